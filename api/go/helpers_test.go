package rill

import (
	"bufio"
	"encoding/binary"
	"io"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"
)

// frame is one v1 frame as a sink receives it.
type frame struct {
	comp uint32
	key  uint64
	data []byte
}

// appendFrame appends a v1 frame.
func appendFrame(b []byte, comp uint32, key uint64, payload []byte) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(12+len(payload)))
	b = binary.BigEndian.AppendUint32(b, comp)
	b = binary.BigEndian.AppendUint64(b, key)
	return append(b, payload...)
}

// readFrame reads one v1 frame.
func readFrame(r *bufio.Reader) (frame, error) {
	var h [16]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return frame{}, err
	}
	n := binary.BigEndian.Uint32(h[0:4])
	f := frame{comp: binary.BigEndian.Uint32(h[4:8]), key: binary.BigEndian.Uint64(h[8:16])}
	f.data = make([]byte, n-12)
	_, err := io.ReadFull(r, f.data)
	return f, err
}

// sink accepts the connections of a worker's loops and collects every frame.
type sink struct {
	ln     net.Listener
	mu     sync.Mutex
	frames []frame
	wg     sync.WaitGroup
	conns  []net.Conn
}

func newSink(t testing.TB) *sink {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &sink{ln: ln}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.mu.Lock()
			s.conns = append(s.conns, c)
			s.mu.Unlock()
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				r := bufio.NewReader(c)
				for {
					f, err := readFrame(r)
					if err != nil {
						return
					}
					s.mu.Lock()
					s.frames = append(s.frames, f)
					s.mu.Unlock()
				}
			}()
		}
	}()
	t.Cleanup(s.close)
	return s
}

func (s *sink) addr() string { return s.ln.Addr().String() }

func (s *sink) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.frames)
}

func (s *sink) snapshot() []frame {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]frame(nil), s.frames...)
}

// waitFor waits until the sink holds n frames or the deadline passes.
func (s *sink) waitFor(t testing.TB, n int, d time.Duration) {
	t.Helper()
	end := time.Now().Add(d)
	for s.count() < n {
		if time.Now().After(end) {
			t.Fatalf("sink: %d frames after %v, want %d", s.count(), d, n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (s *sink) close() {
	s.ln.Close()
	s.mu.Lock()
	for _, c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}

// dial connects to listener i of w.
func dial(t testing.TB, w *Worker, i int) net.Conn {
	t.Helper()
	port, err := w.ListenerPort(i)
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(port))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// waitUntil polls cond for up to d.
func waitUntil(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	end := time.Now().Add(d)
	for !cond() {
		if time.Now().After(end) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// forward is a computation that sends every message to sink 0 unchanged.
var forward = BatchFunc(func(loop int, msgs []Message, em *Emitter) error {
	for i := range msgs {
		if err := em.ToSink(0, msgs[i].CompID, msgs[i].Key, msgs[i].Data()); err != nil {
			return err
		}
	}
	return nil
})

// mustWorker creates a worker and closes it at the end of the test.
func mustWorker(t testing.TB, cfg Config) *Worker {
	t.Helper()
	w, err := NewWorker(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	return w
}
