package rill

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

func TestEndToEndExactlyOnce(t *testing.T) {
	for _, mode := range []LoopMode{LoopsOnRillThreads, LoopsOnGoThreads} {
		t.Run(fmt.Sprint("mode", int(mode)), func(t *testing.T) {
			s := newSink(t)
			w := mustWorker(t, Config{Threads: 2, Loops: mode, Sinks: []string{s.addr()},
				Listeners: []Listener{{Addr: "127.0.0.1:0"}}})
			if err := w.Register(1, "forward", forward); err != nil {
				t.Fatal(err)
			}
			if err := w.Start(); err != nil {
				t.Fatal(err)
			}
			const conns, per = 4, 5000
			var wg sync.WaitGroup
			for c := 0; c < conns; c++ {
				conn := dial(t, w, 0)
				wg.Add(1)
				go func(c int) {
					defer wg.Done()
					var buf []byte
					for i := 0; i < per; i++ {
						seq := uint64(c*per + i)
						var p [8]byte
						binary.BigEndian.PutUint64(p[:], seq)
						buf = appendFrame(buf, 1, seq%97, p[:])
						if len(buf) > 32<<10 || i == per-1 {
							if _, err := conn.Write(buf); err != nil {
								t.Error(err)
								return
							}
							buf = buf[:0]
						}
					}
				}(c)
			}
			wg.Wait()
			s.waitFor(t, conns*per, 20*time.Second)
			if err := w.Stop(); err != nil {
				t.Fatal(err)
			}
			seen := make([]int, conns*per)
			lastPerKey := map[uint64]uint64{}
			for _, f := range s.snapshot() {
				seq := binary.BigEndian.Uint64(f.data)
				if f.comp != 1 || f.key != seq%97 {
					t.Fatalf("frame %d: comp %d key %d", seq, f.comp, f.key)
				}
				seen[seq]++
				// one key, one connection -> order kept (seq grows per connection and key)
				ck := f.key<<8 | seq/per
				if last, ok := lastPerKey[ck]; ok && last >= seq {
					t.Fatalf("key %d: %d after %d", f.key, seq, last)
				}
				lastPerKey[ck] = seq
			}
			for seq, n := range seen {
				if n != 1 {
					t.Fatalf("frame %d arrived %d times", seq, n)
				}
			}
			st, err := w.Stats()
			if err != nil {
				t.Fatal(err)
			}
			if st.MsgsIn != conns*per || st.MsgsOut != conns*per || st.CompErrors != 0 {
				t.Fatalf("stats: in %d out %d errors %d", st.MsgsIn, st.MsgsOut, st.CompErrors)
			}
			if len(st.Comps) != 1 || st.Comps[0].ID != 1 || st.Comps[0].Name != "forward" ||
				st.Comps[0].Msgs != conns*per {
				t.Fatalf("comp stats: %+v", st.Comps)
			}
		})
	}
}

func TestPanicRecovered(t *testing.T) {
	s := newSink(t)
	var reported []*PanicError
	var mu sync.Mutex
	w := mustWorker(t, Config{Sinks: []string{s.addr()},
		Listeners: []Listener{{Addr: "127.0.0.1:0", Framing: FramingLine, CompID: 3}},
		OnPanic: func(p *PanicError) {
			mu.Lock()
			reported = append(reported, p)
			mu.Unlock()
		}})
	comp := BatchFunc(func(loop int, msgs []Message, em *Emitter) error {
		for i := range msgs {
			if string(msgs[i].Data()) == "boom" {
				panic("boom requested")
			}
			if err := em.ToSink(0, 3, msgs[i].Key, msgs[i].Data()); err != nil {
				return err
			}
		}
		return nil
	})
	if err := w.Register(3, "fragile", comp); err != nil {
		t.Fatal(err)
	}
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	c := dial(t, w, 0)
	send := func(line string) {
		if _, err := c.Write([]byte(line + "\n")); err != nil {
			t.Fatal(err)
		}
	}
	send("before")
	s.waitFor(t, 1, 5*time.Second)
	send("boom")
	waitUntil(t, 5*time.Second, "the panic report", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(reported) == 1
	})
	send("after")
	s.waitFor(t, 2, 5*time.Second)
	if got := s.snapshot(); string(got[0].data) != "before" || string(got[1].data) != "after" {
		t.Fatalf("sink got %q, %q", got[0].data, got[1].data)
	}
	cs, err := w.CompStats(3)
	if err != nil {
		t.Fatal(err)
	}
	st, _ := w.Stats()
	if cs.Panics != 1 || cs.Errors != 1 || st.CompErrors != 1 || cs.Msgs != 3 {
		t.Fatalf("comp stats %+v, worker comp_errors %d", cs, st.CompErrors)
	}
	p := reported[0]
	if p.CompID != 3 || p.Name != "fragile" || p.Value != "boom requested" ||
		!strings.Contains(string(p.Stack), "TestPanicRecovered") ||
		!strings.Contains(p.Error(), "panicked") {
		t.Fatalf("report: %v\n%s", p, p.Stack)
	}
}

type releaseCounter struct {
	Computation
	n *atomic.Int64
}

func (r releaseCounter) Release() { r.n.Add(1) }

func TestRegisterUnregisterWhileTrafficFlows(t *testing.T) {
	base := liveHandles.Load()
	s := newSink(t)
	w := mustWorker(t, Config{Threads: 2, Sinks: []string{s.addr()},
		Listeners: []Listener{{Addr: "127.0.0.1:0"}}})
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	const ids = 8
	stop := make(chan struct{})
	var traffic sync.WaitGroup
	for c := 0; c < 2; c++ {
		conn := dial(t, w, 0)
		traffic.Add(1)
		go func(c int) {
			defer traffic.Done()
			var buf []byte
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				buf = buf[:0]
				for j := 0; j < 64; j++ {
					buf = appendFrame(buf, uint32(1+(i+j)%ids), uint64(i*64+j), []byte("x"))
				}
				if _, err := conn.Write(buf); err != nil {
					t.Error(err)
					return
				}
				time.Sleep(100 * time.Microsecond)
			}
		}(c)
	}
	var registered, released atomic.Int64
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < 200; i++ {
				id := uint32(1 + (g*7+i)%ids)
				err := w.Register(id, "churn", releaseCounter{forward, &released})
				switch {
				case err == nil:
					registered.Add(1)
				case errors.Is(err, ErrExist):
				default:
					t.Errorf("register %d: %v", id, err)
					return
				}
				time.Sleep(200 * time.Microsecond) // let traffic meet this registration
				if err := w.Unregister(uint32(1 + (g*3+i)%ids)); err != nil &&
					!errors.Is(err, ErrNotFound) {
					t.Errorf("unregister: %v", err)
					return
				}
			}
		}(g)
	}
	wg.Wait()
	time.Sleep(20 * time.Millisecond)
	close(stop)
	traffic.Wait()
	st, err := w.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if st.MsgsIn == 0 || s.count() == 0 || st.UnknownComp == 0 {
		t.Fatalf("traffic did not meet both states: %d in, %d forwarded, %d unknown",
			st.MsgsIn, s.count(), st.UnknownComp)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if registered.Load() == 0 || released.Load() != registered.Load() {
		t.Fatalf("registered %d, released %d", registered.Load(), released.Load())
	}
	if n := liveHandles.Load(); n != base {
		t.Fatalf("%d handles still live", n-base)
	}
	t.Logf("%d registrations, %d frames in, %d forwarded, %d unknown", registered.Load(),
		st.MsgsIn, s.count(), st.UnknownComp)
}

func TestCloseReleasesEveryHandle(t *testing.T) {
	base := liveHandles.Load()
	s := newSink(t)
	w, err := NewWorker(Config{Threads: 2, Sinks: []string{s.addr()},
		Listeners: []Listener{{Addr: "127.0.0.1:0"}}})
	if err != nil {
		t.Fatal(err)
	}
	var released atomic.Int64
	for id := uint32(1); id <= 10; id++ {
		if err := w.Register(id, fmt.Sprint("c", id), releaseCounter{forward, &released}); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Unregister(10); err != nil {
		t.Fatal(err)
	}
	if released.Load() != 1 || liveHandles.Load() != base+9 {
		t.Fatalf("after one unregister: released %d, live %d", released.Load(),
			liveHandles.Load()-base)
	}
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	c := dial(t, w, 0)
	var buf []byte
	for id := uint32(1); id <= 9; id++ {
		buf = appendFrame(buf, id, uint64(id), []byte("hi"))
	}
	c.Write(buf)
	s.waitFor(t, 9, 5*time.Second)
	if err := w.Close(); err != nil { // computations 1..9 still registered
		t.Fatal(err)
	}
	if released.Load() != 10 || liveHandles.Load() != base {
		t.Fatalf("after Close: released %d of 10, %d handles live", released.Load(),
			liveHandles.Load()-base)
	}
	if err := w.Close(); !errors.Is(err, ErrClosed) {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := w.Stats(); !errors.Is(err, ErrClosed) {
		t.Fatalf("Stats after Close: %v", err)
	}
	if err := w.Register(1, "late", forward); !errors.Is(err, ErrClosed) {
		t.Fatalf("Register after Close: %v", err)
	}
}

// The views handed to Batch are rill's receive buffers: a view kept past the call sees
// later traffic overwrite it; a copy does not change.
func TestPayloadViewNeedsCopy(t *testing.T) {
	const first = "first-message-payload-0123456789"
	var kept, copied []byte
	var got atomic.Bool
	w := mustWorker(t, Config{
		Listeners: []Listener{{Addr: "127.0.0.1:0", Framing: FramingLine, CompID: 1}}})
	w.Register(1, "keeper", BatchFunc(func(loop int, msgs []Message, em *Emitter) error {
		if !got.Load() {
			kept = msgs[0].Data()                // WRONG outside the call: a view
			copied = bytes.Clone(msgs[0].Data()) // right: a copy
			got.Store(true)
		}
		return nil
	}))
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	c := dial(t, w, 0)
	c.Write([]byte(first + "\n"))
	waitUntil(t, 5*time.Second, "the first message", got.Load)
	// More traffic, one small write at a time, cycles through rill's buffer ring.
	other := strings.Repeat("z", len(first)) + "\n"
	deadline := time.Now().Add(10 * time.Second)
	for string(kept) == first && time.Now().Before(deadline) {
		c.Write([]byte(other))
		time.Sleep(200 * time.Microsecond)
	}
	if string(kept) == first {
		t.Fatal("the kept view never changed")
	}
	if string(copied) != first {
		t.Fatalf("the copy changed: %q", copied)
	}
	t.Logf("kept view now reads %q; the copy still reads %q", kept, copied)
}

type flushCounter struct {
	mu     sync.Mutex
	counts map[int]int // loop -> messages since the last flush
}

func (f *flushCounter) Batch(loop int, msgs []Message, em *Emitter) error {
	f.mu.Lock() // only for the race detector's sake: each loop touches its own key
	f.counts[loop] += len(msgs)
	f.mu.Unlock()
	return nil
}

func (f *flushCounter) Flush(loop int, em *Emitter) {
	f.mu.Lock()
	n := f.counts[loop]
	f.counts[loop] = 0
	f.mu.Unlock()
	if n > 0 {
		em.ToSink(0, 9, uint64(loop), []byte(fmt.Sprint(n)))
	}
}

func TestFlushAtStopAndEmitToComp(t *testing.T) {
	s := newSink(t)
	fc := &flushCounter{counts: map[int]int{}}
	w := mustWorker(t, Config{Threads: 2, Sinks: []string{s.addr()},
		Listeners: []Listener{{Addr: "127.0.0.1:0"}}})
	// 1 relays to 2 through ToComp; 2 counts and emits its counts when flushed.
	w.Register(1, "relay", BatchFunc(func(loop int, msgs []Message, em *Emitter) error {
		for i := range msgs {
			if err := em.ToComp(2, msgs[i].Key, msgs[i].Data()); err != nil {
				return err
			}
		}
		return nil
	}))
	w.Register(2, "counter", fc)
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	c := dial(t, w, 0)
	var buf []byte
	for i := 0; i < 1000; i++ {
		buf = appendFrame(buf, 1, uint64(i), []byte("v"))
	}
	c.Write(buf)
	waitUntil(t, 5*time.Second, "relayed messages", func() bool {
		cs, _ := w.CompStats(2)
		return cs.Msgs == 1000
	})
	if err := w.Stop(); err != nil {
		t.Fatal(err)
	}
	// Stop returns once the loops have sent their output; the sink may still be reading.
	total := 0
	waitUntil(t, 5*time.Second, "flushed counts adding up to 1000", func() bool {
		total = 0
		for _, f := range s.snapshot() {
			var n int
			fmt.Sscan(string(f.data), &n)
			total += n
		}
		return total >= 1000
	})
	if total != 1000 {
		t.Fatalf("flushed counts add up to %d, want 1000", total)
	}
}

func TestEmitterLimits(t *testing.T) {
	s := newSink(t)
	big := bytes.Repeat([]byte("b"), scratchBytes+1000) // beyond the scratch area
	results := make(chan []error, 1)
	w := mustWorker(t, Config{Sinks: []string{s.addr()},
		Listeners: []Listener{{Addr: "127.0.0.1:0", Framing: FramingLine, CompID: 1}}})
	w.Register(1, "limits", BatchFunc(func(loop int, msgs []Message, em *Emitter) error {
		results <- []error{
			em.ToSink(1, 1, 0, nil),                 // no sink 1
			em.ToSink(0, 0xFFFFFFFF, 0, nil),        // the control comp id
			em.ToComp(0xFFFFFFFF, 0, nil),           // the same
			em.ToSink(0, 1, 0, make([]byte, 1<<20)), // above MaxFrame-12
			w.Unregister(1),                         // from a loop thread
		}
		for i := 0; i < scratchRecs+10; i++ { // spills once
			if err := em.ToSink(0, 1, uint64(i), []byte("s")); err != nil {
				return err
			}
		}
		return em.ToSink(0, 2, 0, big)
	}))
	w.Start()
	c := dial(t, w, 0)
	c.Write([]byte("go\n"))
	s.waitFor(t, scratchRecs+11, 10*time.Second)
	errs := <-results
	want := []error{ErrInvalid, ErrInvalid, ErrInvalid, ErrInvalid, ErrLoopThread}
	for i := range want {
		if !errors.Is(errs[i], want[i]) {
			t.Fatalf("error %d: %v, want %v", i, errs[i], want[i])
		}
	}
	fr := s.snapshot()
	for i := 0; i < scratchRecs+10; i++ { // in order, across the spill
		if fr[i].key != uint64(i) {
			t.Fatalf("frame %d has key %d", i, fr[i].key)
		}
	}
	if last := fr[len(fr)-1]; last.comp != 2 || !bytes.Equal(last.data, big) {
		t.Fatalf("big frame: comp %d, %d bytes", last.comp, len(last.data))
	}
}

// wantErrText checks an error's whole text, and that "rill: " appears in it once.
func wantErrText(t *testing.T, err error, want string) {
	t.Helper()
	if got := err.Error(); got != want || strings.Count(got, "rill: ") != 1 {
		t.Fatalf("error text %q, want %q", got, want)
	}
}

func mustPort(t *testing.T, w *Worker, i int) int {
	t.Helper()
	p, err := w.ListenerPort(i)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestErrorsAndRun(t *testing.T) {
	if _, err := NewWorker(Config{Listeners: []Listener{{Addr: "nonsense"}}}); !errors.Is(err, ErrAddr) {
		t.Fatalf("bad address: %v", err)
	}
	if _, err := NewWorker(Config{Threads: 65}); !errors.Is(err, ErrRange) {
		t.Fatalf("65 threads: %v", err)
	}
	// A delivery for a sink that does not exist, or one rill does not know.
	if _, err := NewWorker(Config{SinkDelivery: []Delivery{DeliveryAcked}}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("delivery without a sink: %v", err)
	}
	if _, err := NewWorker(Config{Sinks: []string{"127.0.0.1:9"}, SinkDelivery: []Delivery{7}}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("unknown delivery: %v", err)
	}
	if w, err := NewWorker(Config{Sinks: []string{"127.0.0.1:9"}, SinkDelivery: []Delivery{DeliveryAcked}}); err != nil {
		t.Fatalf("acked sink: %v", err)
	} else {
		w.Close()
	}
	s := newSink(t)
	w := mustWorker(t, Config{Threads: 2, Sinks: []string{s.addr()},
		Listeners: []Listener{{Addr: "127.0.0.1:0"}}})
	if err := w.Register(5, "f", forward); err != nil {
		t.Fatal(err)
	}
	if err := w.Register(5, "again", forward); !errors.Is(err, ErrExist) {
		t.Fatalf("duplicate: %v", err)
	} else {
		wantErrText(t, err, `rill: Register 5 ("again"): a computation with this id is already registered`)
	}
	// A port in use: the error names the address, and says "rill:" and the cause once.
	busy := fmt.Sprintf("127.0.0.1:%d", mustPort(t, w, 0))
	if _, err := NewWorker(Config{Listeners: []Listener{{Addr: busy}}}); !errors.Is(err, syscall.EADDRINUSE) {
		t.Fatalf("port in use: %v", err)
	} else {
		wantErrText(t, err, "rill: cannot listen on "+busy+": "+Errno(-int(syscall.EADDRINUSE)).Error())
	}
	if err := w.Unregister(6); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown: %v", err)
	}
	if _, err := w.CompStats(6); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown stats: %v", err)
	}
	if _, err := w.ListenerPort(3); !errors.Is(err, ErrInvalid) {
		t.Fatalf("listener 3: %v", err)
	}
	// The embedder brings the loop threads.
	var runs sync.WaitGroup
	runErr := make([]error, 2)
	for i := 0; i < 2; i++ {
		runs.Add(1)
		go func(i int) { defer runs.Done(); runErr[i] = w.Run(i) }(i)
	}
	c := dial(t, w, 0)
	var buf []byte
	for i := 0; i < 100; i++ {
		buf = appendFrame(buf, 5, uint64(i), []byte("r"))
	}
	c.Write(buf)
	s.waitFor(t, 100, 5*time.Second)
	if err := w.Start(); !errors.Is(err, ErrState) {
		t.Fatalf("Start while running: %v", err)
	}
	if err := w.Stop(); err != nil {
		t.Fatal(err)
	}
	runs.Wait()
	if runErr[0] != nil || runErr[1] != nil {
		t.Fatalf("Run: %v, %v", runErr[0], runErr[1])
	}
	if ErrInvalid.Name() != "RILL_EINVAL" || !strings.Contains(ErrInvalid.Error(), "invalid") {
		t.Fatalf("Errno: %q %q", ErrInvalid.Name(), ErrInvalid.Error())
	}
	if Version() == "" {
		t.Fatal("no version")
	}
	// ClusterSupported agrees with what NewWorker does with a cluster config.
	cw, err := NewWorker(Config{Cluster: ClusterConfig{ZKHosts: "127.0.0.1:1", Root: "/x",
		PeerAddr: "127.0.0.1:0"}})
	if err == nil {
		cw.Close() // never started: no ZooKeeper is contacted
	}
	if ClusterSupported() == errors.Is(err, ErrUnsupported) {
		t.Fatalf("ClusterSupported() %v, NewWorker with a cluster: %v", ClusterSupported(), err)
	}
}

// ToSink says ErrFull for exactly the frames rill drops for a full sink buffer, although
// the emits reach rill only after the call: a sink that refuses connections fills within
// one batch, and Stats.SinkDropped counts each ErrFull. (A full sink then pauses the
// loop's sources, so later batches wait for it to drain: backpressure, not drops.)
func TestToSinkFull(t *testing.T) {
	const sinkBuffer, payload = 64 << 10, 100
	type result struct{ queued, full int }
	results := make(chan result, 1)
	w := mustWorker(t, Config{SinkBuffer: sinkBuffer, MaxFrame: 4096,
		Sinks:        []string{"127.0.0.1:9", "127.0.0.1:9"}, // the discard port: refused
		SinkDelivery: []Delivery{DeliveryBestEffort, DeliveryAcked},
		Listeners:    []Listener{{Addr: "127.0.0.1:0", Framing: FramingLine, CompID: 1}}})
	data := make([]byte, payload)
	w.Register(1, "full", BatchFunc(func(loop int, msgs []Message, em *Emitter) error {
		var r result
		for i := 0; i < 2*sinkBuffer/(16+payload); i++ {
			switch err := em.ToSink(0, 1, uint64(i), data); {
			case err == nil:
				r.queued++
			case errors.Is(err, ErrFull):
				r.full++
			default:
				return err
			}
			if err := em.ToSink(1, 1, uint64(i), data[:1]); err != nil { // acked: never full
				return err
			}
		}
		results <- r
		return nil
	}))
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	c := dial(t, w, 0)
	c.Write([]byte("one\n"))
	r := <-results
	want := sinkBuffer / (16 + payload)
	if r.queued != want || r.full != 2*sinkBuffer/(16+payload)-want {
		t.Fatalf("queued %d, full %d; want %d queued", r.queued, r.full, want)
	}
	waitStats(t, w, "every ErrFull counted", func(s Stats) bool { return s.SinkDropped >= uint64(r.full) })
	if s, _ := w.Stats(); s.SinkDropped != uint64(r.full) {
		t.Fatalf("SinkDropped %d, ErrFull returned %d times", s.SinkDropped, r.full)
	}
}

// A computation that sleeps 2 ms per batch: BatchTime is at least Batches x 2 ms, the
// buckets add up to Batches, and none below 2 ms holds a call.
func TestCompBatchTime(t *testing.T) {
	const sleep = 2 * time.Millisecond
	w := mustWorker(t, Config{Threads: 1,
		Listeners: []Listener{{Addr: "127.0.0.1:0", Framing: FramingLine, CompID: 4}}})
	if err := w.Register(4, "sleepy", BatchFunc(func(loop int, msgs []Message, em *Emitter) error {
		time.Sleep(sleep)
		return nil
	})); err != nil {
		t.Fatal(err)
	}
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	c := dial(t, w, 0)
	for i := 0; i < 10; i++ {
		if _, err := c.Write([]byte("x\ny\n")); err != nil {
			t.Fatal(err)
		}
		time.Sleep(3 * time.Millisecond)
	}
	var cs CompStats
	waitUntil(t, 20*time.Second, "20 messages", func() bool {
		cs, _ = w.CompStats(4)
		return cs.Msgs == 20
	})
	var sum uint64
	for i, n := range cs.BatchBuckets {
		sum += n
		if BatchBucketBound(i) < sleep && n != 0 {
			t.Errorf("bucket %d (<= %v) holds %d calls that slept %v", i, BatchBucketBound(i), n, sleep)
		}
	}
	if cs.Batches == 0 || sum != cs.Batches || cs.BatchTime < time.Duration(cs.Batches)*sleep {
		t.Fatalf("batches %d, in buckets %d, batch time %v", cs.Batches, sum, cs.BatchTime)
	}
	if BatchBucketBound(0) != time.Microsecond || BatchBucketBound(18) != time.Second ||
		BatchBucketBound(NumBatchBuckets-1) != math.MaxInt64 || BatchBucketBound(NumBatchBuckets) != 0 {
		t.Fatalf("bounds %v %v %v", BatchBucketBound(0), BatchBucketBound(18), BatchBucketBound(NumBatchBuckets-1))
	}
}

// RegisterStateless: every message runs on the loop that read its connection, so nothing
// is handed between the two loops; the same traffic for a keyed computation is handed
// over (so the keys do spread over both loops).
func TestRegisterStateless(t *testing.T) {
	const conns, perConn = 4, 2000
	w := mustWorker(t, Config{Threads: 2, Listeners: []Listener{{Addr: "127.0.0.1:0"}}})
	var connLoop [conns]atomic.Int32 // loop + 1 that ran the connection's messages
	var ran, wrongLoop atomic.Int64
	run := BatchFunc(func(loop int, msgs []Message, em *Emitter) error {
		for i := range msgs {
			c := binary.BigEndian.Uint32(msgs[i].Data())
			if !connLoop[c].CompareAndSwap(0, int32(loop+1)) && connLoop[c].Load() != int32(loop+1) {
				wrongLoop.Add(1)
			}
		}
		ran.Add(int64(len(msgs)))
		return nil
	})
	if err := w.RegisterStateless(1, "stateless", run); err != nil {
		t.Fatal(err)
	}
	var keyed atomic.Int64
	if err := w.Register(2, "keyed", BatchFunc(func(loop int, msgs []Message, em *Emitter) error {
		keyed.Add(int64(len(msgs)))
		return nil
	})); err != nil {
		t.Fatal(err)
	}
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	send := func(comp uint32) {
		for c := 0; c < conns; c++ {
			var buf []byte
			for i := 0; i < perConn; i++ {
				buf = appendFrame(buf, comp, uint64(c*perConn+i), binary.BigEndian.AppendUint32(nil, uint32(c)))
			}
			conn := dial(t, w, 0)
			if _, err := conn.Write(buf); err != nil {
				t.Fatal(err)
			}
		}
	}
	send(1)
	waitUntil(t, 20*time.Second, "the stateless messages", func() bool { return ran.Load() == conns*perConn })
	if s, _ := w.Stats(); s.HandoffMsgs != 0 || wrongLoop.Load() != 0 {
		t.Fatalf("stateless: %d handed over, %d on another loop than their connection's",
			s.HandoffMsgs, wrongLoop.Load())
	}
	send(2)
	waitUntil(t, 20*time.Second, "the keyed messages", func() bool { return keyed.Load() == conns*perConn })
	if s, _ := w.Stats(); s.HandoffMsgs == 0 {
		t.Fatal("keyed: nothing handed over, so the test's keys all stayed on one loop")
	}
}
