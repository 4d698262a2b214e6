package rill

import (
	"encoding/binary"
	"fmt"
	"net"
	"runtime/cgo"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"rill.dev/rill/internal/gopeer"
)

// Benchmarks (not tests): see docs/go-api.md for the command, the numbers and their noise.

// sumComp touches every payload byte count, so a batch is not optimised away.
type sumComp struct{ sum atomic.Uint64 }

func (s *sumComp) Batch(loop int, msgs []Message, em *Emitter) error {
	var n uint64
	for i := range msgs {
		n += uint64(len(msgs[i].Data())) + msgs[i].Key
	}
	s.sum.Add(n)
	return nil
}

// BenchmarkBoundary: ns per message for one C→Go call per batch of 1, 16, 256 messages,
// made from a thread C created (as rill's own loop threads are) and from a Go-locked
// thread (as loops entered with Run are).
func BenchmarkBoundary(b *testing.B) {
	w, err := NewWorker(Config{})
	if err != nil {
		b.Fatal(err)
	}
	defer w.Close()
	w.Register(1, "sum", &sumComp{})
	for _, thread := range []string{"cthread", "gothread"} {
		for _, batch := range []int{1, 16, 256} {
			b.Run(fmt.Sprintf("%s/batch=%d", thread, batch), func(b *testing.B) {
				iters := int64(b.N/batch + 1)
				d, err := w.benchCalls(1, batch, iters, thread == "cthread")
				if err != nil {
					b.Fatal(err)
				}
				msgs := float64(iters) * float64(batch)
				b.ReportMetric(float64(d.Nanoseconds())/msgs, "ns/msg")
				b.ReportMetric(float64(d.Nanoseconds())/float64(iters), "ns/call")
			})
		}
	}
}

// chunk returns about 1 MiB of v1 frames with 64-byte payloads over 1024 keys, for comp 1.
func chunk() ([]byte, int) {
	var buf []byte
	payload := make([]byte, 64)
	n := 0
	for len(buf) < 1<<20 {
		binary.BigEndian.PutUint64(payload, uint64(n))
		buf = appendFrame(buf, 1, uint64(n%1024), payload)
		n++
	}
	return buf, n
}

// blast sends `reps` copies of data on each of `conns` connections to addr, then closes
// them.
func blast(b *testing.B, addr string, conns, reps int, data []byte) {
	var wg sync.WaitGroup
	for c := 0; c < conns; c++ {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			b.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer conn.Close()
			for r := 0; r < reps; r++ {
				if _, err := conn.Write(data); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
}

// countComp counts messages per key in per-loop maps (no locks: key affinity), and adds
// each batch's size to done.
type countComp struct {
	perLoop []map[uint64]uint64
	done    atomic.Int64
}

func (c *countComp) Batch(loop int, msgs []Message, em *Emitter) error {
	m := c.perLoop[loop]
	for i := range msgs {
		m[msgs[i].Key]++
	}
	c.done.Add(int64(len(msgs)))
	return nil
}

// runRill pushes b.N frames (rounded up to whole chunks) through a rill worker with a Go
// counting computation and returns messages per second.
func runRill(b *testing.B, mode LoopMode, threads, conns int) float64 {
	data, per := chunk()
	reps := (b.N + per*conns - 1) / (per * conns)
	total := int64(reps * per * conns)
	w, err := NewWorker(Config{Threads: threads, Loops: mode,
		Listeners: []Listener{{Addr: "127.0.0.1:0"}}})
	if err != nil {
		b.Fatal(err)
	}
	defer w.Close()
	cc := &countComp{perLoop: make([]map[uint64]uint64, threads)}
	for i := range cc.perLoop {
		cc.perLoop[i] = map[uint64]uint64{}
	}
	w.Register(1, "count", cc)
	if err := w.Start(); err != nil {
		b.Fatal(err)
	}
	port, _ := w.ListenerPort(0)
	b.ResetTimer()
	t0 := time.Now()
	blast(b, fmt.Sprintf("127.0.0.1:%d", port), conns, reps, data)
	for cc.done.Load() < total {
		time.Sleep(50 * time.Microsecond)
	}
	el := time.Since(t0)
	b.StopTimer()
	rate := float64(total) / el.Seconds()
	b.ReportMetric(rate/1e6, "Mmsg/s")
	b.ReportMetric(float64(el.Nanoseconds())/float64(total), "ns/msg")
	return rate
}

// runPeer pushes the same frames through the pure-Go peer (per-key counts in a 64-shard
// mutex map, as a goroutine-per-connection server needs).
func runPeer(b *testing.B, conns int) float64 {
	data, per := chunk()
	reps := (b.N + per*conns - 1) / (per * conns)
	total := int64(reps * per * conns)
	type countShard struct {
		mu sync.Mutex
		m  map[uint64]uint64
	}
	var counts [64]countShard
	for i := range counts {
		counts[i].m = map[uint64]uint64{}
	}
	reg := gopeer.NewRegistry()
	reg.Register(1, func(key uint64, payload []byte) {
		s := &counts[key%64]
		s.mu.Lock()
		s.m[key]++
		s.mu.Unlock()
	})
	var done atomic.Int64
	srv := &gopeer.Server{Reg: reg, OnConnDone: func(n uint64) { done.Add(int64(n)) }}
	addr, err := srv.Listen("127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer srv.Close()
	b.ResetTimer()
	t0 := time.Now()
	blast(b, addr, conns, reps, data)
	for done.Load() < total {
		time.Sleep(50 * time.Microsecond)
	}
	el := time.Since(t0)
	b.StopTimer()
	rate := float64(total) / el.Seconds()
	b.ReportMetric(rate/1e6, "Mmsg/s")
	b.ReportMetric(float64(el.Nanoseconds())/float64(total), "ns/msg")
	return rate
}

// BenchmarkLoops: the same traffic through loops on rill's threads and on Go-locked
// threads (Start with LoopsOnRillThreads / LoopsOnGoThreads).
func BenchmarkLoops(b *testing.B) {
	for _, conns := range []int{1, 4} {
		b.Run(fmt.Sprintf("rill-threads/conns=%d", conns), func(b *testing.B) {
			runRill(b, LoopsOnRillThreads, 2, conns)
		})
		b.Run(fmt.Sprintf("go-threads/conns=%d", conns), func(b *testing.B) {
			runRill(b, LoopsOnGoThreads, 2, conns)
		})
	}
}

// BenchmarkVsPureGo: rill with a Go computation against the pure-Go peer, same frames,
// same run (64-byte payloads, 1024 keys, per-key counting).
func BenchmarkVsPureGo(b *testing.B) {
	for _, conns := range []int{1, 4} {
		b.Run(fmt.Sprintf("rill/conns=%d", conns), func(b *testing.B) {
			runRill(b, LoopsDefault, 2, conns)
		})
		b.Run(fmt.Sprintf("gopeer/conns=%d", conns), func(b *testing.B) {
			runPeer(b, conns)
		})
	}
}

// BenchmarkRegistry: one lookup of a computation by id, for cgo.Handle.Value (what the
// binding does per batch), a single-lock map and the 64-shard RWMutex map, with 1 and 2
// goroutines looking up concurrently (ns/op is wall time per lookup).
func BenchmarkRegistry(b *testing.B) {
	const n = 1024
	handles := make([]cgo.Handle, n)
	for i := range handles {
		handles[i] = cgo.NewHandle(&compEntry{id: uint32(i)})
	}
	defer func() {
		for _, h := range handles {
			h.Delete()
		}
	}()
	var single struct {
		mu sync.Mutex
		m  map[uint32]*compEntry
	}
	single.m = map[uint32]*compEntry{}
	sharded := gopeer.NewRegistry()
	for i := 0; i < n; i++ {
		single.m[uint32(i)] = &compEntry{id: uint32(i)}
		sharded.Register(uint32(i), func(uint64, []byte) {})
	}
	lookups := map[string]func(i uint32) bool{
		"cgo.Handle.Value": func(i uint32) bool {
			return handles[i%n].Value().(*compEntry) != nil
		},
		"single-lock-map": func(i uint32) bool {
			single.mu.Lock()
			e := single.m[i%n]
			single.mu.Unlock()
			return e != nil
		},
		"64-shard-rwmutex": func(i uint32) bool {
			return sharded.Lookup(i%n) != nil
		},
	}
	for _, name := range []string{"cgo.Handle.Value", "single-lock-map", "64-shard-rwmutex"} {
		f := lookups[name]
		for _, g := range []int{1, 2} {
			b.Run(fmt.Sprintf("%s/goroutines=%d", name, g), func(b *testing.B) {
				var wg sync.WaitGroup
				per := b.N / g
				for j := 0; j < g; j++ {
					wg.Add(1)
					go func(j int) {
						defer wg.Done()
						miss := 0
						for i := 0; i < per; i++ {
							if !f(uint32(i*7 + j)) {
								miss++
							}
						}
						if miss > 0 {
							b.Error("miss")
						}
					}(j)
				}
				wg.Wait()
			})
		}
	}
}
