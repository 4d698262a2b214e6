package rill

import (
	"encoding/binary"
	"errors"
	"sync/atomic"
	"testing"
	"time"
)

// stateCounter counts frames per key in rill's managed state and, on Flush, emits every
// key's count to sink 0 (8 bytes, big-endian).
type stateCounter struct {
	wrongLoop atomic.Uint64
	scanErr   atomic.Value
}

func (c *stateCounter) BatchState(loop int, msgs []Message, st State, em *Emitter) error {
	for i := range msgs {
		v := st.Value(i)
		n := binary.LittleEndian.Uint64(v) + 1
		binary.LittleEndian.PutUint64(v, n)
		if prev := v[8]; prev != 0 && int(prev) != loop+1 {
			c.wrongLoop.Add(1)
		}
		v[8] = byte(loop + 1)
	}
	return nil
}

func (c *stateCounter) Flush(loop int, em *Emitter) {
	err := em.ScanState(func(key uint64, v []byte) bool {
		var p [8]byte
		binary.BigEndian.PutUint64(p[:], binary.LittleEndian.Uint64(v))
		em.ToSink(0, 5, key, p[:])
		return true
	})
	if err != nil {
		c.scanErr.Store(err)
	}
}

// A Go computation with managed state counts 3000 keys exactly over two loops, each key's
// value on one loop; Flush goes through every value with one scan per 256 keys.
func TestManagedStateCounts(t *testing.T) {
	s := newSink(t)
	w := mustWorker(t, Config{Threads: 2, Sinks: []string{s.addr()},
		Listeners: []Listener{{Addr: "127.0.0.1:0"}}})
	c := &stateCounter{}
	if err := w.RegisterState(5, "count", 9, c); err != nil {
		t.Fatal(err)
	}
	if err := w.RegisterState(6, "x", 0, c); !errors.Is(err, ErrInvalid) {
		t.Fatalf("value size 0: %v, want ErrInvalid", err)
	}
	if err := w.RegisterState(6, "x", StateValueMax+1, c); !errors.Is(err, ErrInvalid) {
		t.Fatalf("value size %d: %v, want ErrInvalid", StateValueMax+1, err)
	}
	if err := w.RegisterState(5, "again", 8, c); !errors.Is(err, ErrExist) {
		t.Fatalf("taken id: %v, want ErrExist", err)
	}
	// ScanState from a computation without managed state is refused.
	var plainScan atomic.Value
	w.Register(7, "plain", BatchFunc(func(loop int, msgs []Message, em *Emitter) error {
		plainScan.Store(em.ScanState(func(uint64, []byte) bool { return true }))
		return nil
	}))
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	const keys, rounds = 3000, 7
	want := map[uint64]uint64{}
	var buf []byte
	for r := 0; r < rounds; r++ {
		for k := uint64(0); k < keys; k++ {
			if k%3 == 0 && r > 3 {
				continue // some keys have fewer frames
			}
			buf = appendFrame(buf, 5, k*7919, nil)
			want[k*7919]++
		}
	}
	buf = appendFrame(buf, 7, 1, nil)
	conn := dial(t, w, 0)
	if _, err := conn.Write(buf); err != nil {
		t.Fatal(err)
	}
	total := uint64(0)
	for _, n := range want {
		total += n
	}
	waitUntil(t, 20*time.Second, "every frame counted", func() bool {
		cs, _ := w.CompStats(5)
		return cs.Msgs == total
	})
	waitUntil(t, 20*time.Second, "the plain computation's scan", func() bool {
		return plainScan.Load() != nil
	})
	if err, _ := plainScan.Load().(error); !errors.Is(err, ErrInvalid) {
		t.Fatalf("ScanState from a plain computation: %v, want ErrInvalid", plainScan.Load())
	}
	if st, _ := w.Stats(); st.StateBytes < keys*16 {
		t.Fatalf("StateBytes %d for %d keys", st.StateBytes, keys)
	}
	if err := w.Stop(); err != nil {
		t.Fatal(err)
	}
	s.waitFor(t, len(want), 20*time.Second)
	got := map[uint64]uint64{}
	for _, f := range s.snapshot() {
		if _, dup := got[f.key]; dup {
			t.Fatalf("key %d flushed twice", f.key)
		}
		got[f.key] = binary.BigEndian.Uint64(f.data)
	}
	for k, n := range want {
		if got[k] != n {
			t.Fatalf("key %d: count %d, want %d", k, got[k], n)
		}
	}
	if len(got) != len(want) {
		t.Fatalf("%d keys flushed, want %d", len(got), len(want))
	}
	if n := c.wrongLoop.Load(); n != 0 {
		t.Fatalf("%d values seen on another loop", n)
	}
	if err := c.scanErr.Load(); err != nil {
		t.Fatalf("ScanState: %v", err)
	}
}
