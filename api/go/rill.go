// Package rill embeds the rill stream-processing worker core (a C library) in a Go
// program, and lets computations written in Go process its traffic.
//
// A [Worker] listens on TCP, decodes frames and hands each registered [Computation] whole
// batches of messages on rill's loop threads; what a computation emits goes to a sink (an
// outbound TCP connection) or to another computation. All messages of one key reach one
// loop, in the order their connection sent them, so per-key state kept per loop index
// needs no lock.
//
// # Crossing the cgo boundary
//
// Each batch is one C→Go call, whatever its size. Message payloads are zero-copy views of
// rill's receive buffers: [Message.Data] and the msgs slice itself are valid only until
// Batch returns, and the memory is reused for later traffic right after. Copy what must
// outlive the call (bytes.Clone, string(m.Data()), append). Emits are copied by the
// [Emitter] into a C scratch buffer of the loop and handed to rill when the callback
// returns, so emitting costs a copy, not a cgo call per message.
//
// C holds no Go pointers: each registration stores one [runtime/cgo.Handle] as rill's
// context value; it is deleted when rill's release callback runs (after [Worker.Unregister]
// or [Worker.Close]), once no loop can still call the computation.
//
// # Building
//
// The package finds the C library with pkg-config. By default it links librill.a and its
// dependencies' archives into the binary (rill-static.pc), which then runs without
// librill.so; -tags rill_dynamic links librill.so instead (rill.pc). Point
// PKG_CONFIG_PATH at an installed rill's lib/pkgconfig, or at a CMake build tree's
// uninstalled .pc files:
//
//	PKG_CONFIG_PATH=$REPO/build/pkgconfig go test ./...
//
// The Go build cache does not notice a rebuilt librill or changed headers; api/go/gotool
// (used by the scripts) sets CGO_CFLAGS=-DRILL_LIB_HASH=<sha256 of the library and
// headers> so that any change to them changes the cache key. See docs/go-api.md.
package rill

/*
#include <stdlib.h>
#include "shim.h"
*/
import "C"

import (
	"errors"
	"fmt"
	"log"
	"log/slog"
	"runtime"
	"runtime/cgo"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"
)

// Framing is the framing of a listener's byte stream.
type Framing int

const (
	// FramingRill is rill's v1 framing: u32 length (12 + payload), u32 computation id,
	// u64 key, payload; big-endian.
	FramingRill Framing = C.RILL_FRAMING_RILL
	// FramingLP is a u32 big-endian payload length followed by the payload (Wallaroo's
	// TCP source framing). Every message goes to the listener's CompID.
	FramingLP Framing = C.RILL_FRAMING_LP
	// FramingLine is newline-terminated text (a trailing "\r" is dropped). Every line
	// goes to the listener's CompID.
	FramingLine Framing = C.RILL_FRAMING_LINE
)

// String returns "rill", "lp" or "line".
func (f Framing) String() string {
	switch f {
	case FramingRill:
		return "rill"
	case FramingLP:
		return "lp"
	case FramingLine:
		return "line"
	}
	return fmt.Sprintf("Framing(%d)", int(f))
}

// Listener configures one TCP listener.
type Listener struct {
	// Addr is "HOST:PORT" (IPv4, "[v6]" or "localhost"); port 0 picks a free port, see
	// [Worker.ListenerPort].
	Addr string
	// Framing of the incoming byte stream.
	Framing Framing
	// CompID receives every message of an lp or line listener (unused for FramingRill).
	CompID uint32
	// HasKey makes every message of an lp or line listener use Key; otherwise the key is
	// a hash of the payload.
	HasKey bool
	// Key is the fixed key used when HasKey is set.
	Key uint64
}

// LoopMode says which threads run a worker's loops when [Worker.Start] is called.
type LoopMode int

const (
	// LoopsDefault picks the mode measured faster, LoopsOnGoThreads: a C→Go call from a
	// Go-locked thread costs less than one from a thread C created (docs/go-api.md).
	LoopsDefault LoopMode = iota
	// LoopsOnRillThreads: rill creates one pthread per loop (rill_worker_start). Go
	// callbacks then run on threads C created.
	LoopsOnRillThreads
	// LoopsOnGoThreads: Start runs each loop on a goroutine locked to its OS thread
	// (runtime.LockOSThread + rill_worker_run), as [Worker.Run] does.
	LoopsOnGoThreads
)

// Config holds a worker's settings. The zero value is usable: one loop thread, 1 MiB
// frames, no listeners, no sinks.
// Delivery is how frames reach a sink (rill_delivery_t).
type Delivery int

const (
	// DeliveryBestEffort sends frames as they are emitted; what the kernel had accepted
	// when a connection broke is lost (and cannot be counted). The default.
	DeliveryBestEffort Delivery = C.RILL_DELIVERY_BEST_EFFORT
	// DeliveryAcked makes each loop's connection to the sink an acknowledged stream
	// (HELLO / WELCOME / ACK, docs/protocol.md): frames stay retained until the sink
	// acknowledges them and are sent again after a reconnect, so a sink restart or a cut
	// connection loses nothing the worker holds.
	DeliveryAcked Delivery = C.RILL_DELIVERY_ACKED
)

type Config struct {
	// Threads is the number of loop threads, 1..64 (0 means 1).
	Threads int
	// MaxFrame is the largest v1 length field in bytes (12 + payload); 0 means the
	// default, 1 MiB. A payload is at most MaxFrame-12 bytes whatever carries it: a v1,
	// lp or line message from a source, or an emit (see rill_config_set_max_frame).
	MaxFrame uint32
	// SinkBuffer bounds, per loop and per sink, the output bytes waiting to be sent; 0
	// means the default (64 MiB). Output beyond it is dropped and counted.
	SinkBuffer int
	// FlushInterval is how often every [Flusher] runs on every loop; 0 means only when
	// the worker stops. Rounded up to whole milliseconds.
	FlushInterval time.Duration
	// BusyWait turns on batching under load (rill_config_set_busy_wait_us): once a loop's
	// iteration handled 4 or more completions, its next wait lasts until as many are in,
	// or BusyWait (rounded up to microseconds, at most 10 ms). Less CPU per message for
	// up to BusyWait more latency while busy; 0 (default) is off.
	BusyWait time.Duration
	// MaxConns is the most source connections open at once across all loops; 0 means
	// the default (10000). More are closed right after accept (Stats.ConnsRefused).
	MaxConns int
	// IdleTimeout closes a source connection stalled inside a frame for this long
	// (Stats.ErrIdle); 0 means the default (30 s), a negative value never. Rounded up to
	// whole milliseconds.
	IdleTimeout time.Duration
	// CarryBudget bounds the bytes all source connections together hold in partial
	// frames; 0 means the default (256 MiB). Above it the connections with the largest
	// partial frames are closed (Stats.ErrCarry).
	CarryBudget int
	// SourceCredit is the credit granted to each acked source connection (one whose
	// first frame is HELLO): the bytes of frames it may have unacknowledged. 0 keeps
	// the default (4 MiB); 4 KiB..1 GiB.
	SourceCredit int
	// SourceCreditPool is the credit few acked connections share (acked sources and
	// connections from other members alike): each is granted max(SourceCredit, pool /
	// acked connections open), so that one connection keeps a longer pipeline busy. 0
	// keeps the default (4 times SourceCredit), negative turns sharing off; 4 KiB..64 GiB.
	SourceCreditPool int64
	// MetricsAddr, when set ("HOST:PORT", port 0 picks one), serves the worker's counters
	// in the Prometheus text format at http://MetricsAddr/metrics; see
	// [Worker.MetricsPort].
	MetricsAddr string
	// Listeners are bound by [NewWorker].
	Listeners []Listener
	// Sinks are "HOST:PORT" addresses; each loop opens one connection to each when it
	// starts. Emitters name a sink by its index in this slice.
	Sinks []string
	// SinkDelivery[i] says how frames reach Sinks[i]; a missing entry means
	// DeliveryBestEffort. See [Delivery].
	SinkDelivery []Delivery
	// DeadLetter sends frames for unregistered computations to sink DeadLetterSink
	// instead of dropping them (both are counted in Stats.UnknownComp).
	DeadLetter bool
	// DeadLetterSink is the index in Sinks used when DeadLetter is set.
	DeadLetterSink int
	// Loops selects the threads that [Worker.Start] runs the loops on.
	Loops LoopMode
	// Logger, when set, receives the C library's log lines (see [SetLogger], which
	// NewWorker calls with it: the hook is process-wide, so the last one set wins, and it
	// stays after Close). nil leaves the library's logging as it is (stderr by default).
	Logger *slog.Logger
	// OnPanic, when set, is called with every panic recovered from a computation; by
	// default the panic is logged with the standard log package. It runs on the loop
	// thread: it must not block.
	OnPanic func(*PanicError)
	// Cluster makes the worker a member of a ZooKeeper-coordinated cluster when
	// Cluster.ZKHosts is set; see [ClusterConfig], [Worker.Membership].
	Cluster ClusterConfig
}

// PanicError describes a panic recovered from a computation's Batch or Flush.
type PanicError struct {
	CompID uint32 // the computation's id
	Name   string // the name it was registered with
	Loop   int    // the loop thread it ran on
	Value  any    // the value passed to panic
	Stack  []byte // the panicking goroutine's stack
}

// Error returns a one-line description (without the stack).
func (p *PanicError) Error() string {
	return fmt.Sprintf("rill: computation %d (%s) panicked on loop %d: %v", p.CompID, p.Name,
		p.Loop, p.Value)
}

// Message is one message of a batch: a view into rill's receive buffers, valid only
// during the Batch call that received it. Its layout is rill_msg_t's, so a batch reaches
// Go without a copy.
type Message struct {
	data   *byte
	len    uint32
	CompID uint32 // the computation the frame was addressed to
	Key    uint64 // the partition key
}

// Data returns the payload: a zero-copy view of C memory that is valid only until the
// Batch call returns (rill reuses the memory for later traffic). Copy it to keep it.
func (m *Message) Data() []byte {
	if m.len == 0 {
		return nil
	}
	return unsafe.Slice(m.data, m.len)
}

// Len returns the payload length.
func (m *Message) Len() int { return int(m.len) }

// Computation processes batches of messages for one computation id.
type Computation interface {
	// Batch runs on loop thread `loop` (0..Threads-1) with messages that are all
	// addressed to this computation; messages of one key always arrive on the same loop,
	// in order. msgs, their payloads and em are valid only during the call. Batch must not
	// block and must not call Stop, Close or Unregister. A non-nil error (or a panic,
	// which is recovered) counts the whole batch as failed in rill's comp_errors; what was
	// emitted before is kept.
	Batch(loop int, msgs []Message, em *Emitter) error
}

// Flusher is implemented by computations that hold state to emit periodically: Flush
// runs on every loop every Config.FlushInterval and once when the worker stops, with the
// same rules as Batch.
type Flusher interface {
	Flush(loop int, em *Emitter)
}

// Releaser is implemented by computations that want to know when their registration has
// ended: Release runs exactly once, after Unregister or Close, when no loop can call the
// computation any more, on the goroutine that called Unregister or Close.
type Releaser interface {
	Release()
}

// StateComputation processes batches for a computation whose per-key state rill keeps
// (managed state, docs/state.md), registered with [Worker.RegisterState]. BatchState has
// Batch's rules; state holds the value of each message's key, so that a batch costs one
// cgo crossing however many keys it has.
type StateComputation interface {
	BatchState(loop int, msgs []Message, state State, em *Emitter) error
}

// StateValueMax is the largest value size of a computation with managed state
// (RILL_STATE_VALUE_MAX).
const StateValueMax = C.RILL_STATE_VALUE_MAX

// State is the values of one batch's keys: Value(i) belongs to msgs[i].Key. Valid only
// during the BatchState call that received it.
type State struct {
	values []unsafe.Pointer // rill's array: values[i] is msgs[i]'s value
	size   int
}

// Value returns the value of message i's key: a writable view of rill's memory, the size
// given to RegisterState, all zero for a key that has no value yet. Messages of one key in
// a batch share one value. A value that is all zero counts as absent: writing zeros
// deletes the key. rill stores the bytes as they are (on this machine's byte order).
func (s State) Value(i int) []byte {
	return unsafe.Slice((*byte)(s.values[i]), s.size)
}

// Len returns the number of values (the batch's messages).
func (s State) Len() int { return len(s.values) }

// BatchFunc adapts a function to the Computation interface.
type BatchFunc func(loop int, msgs []Message, em *Emitter) error

// Batch calls f.
func (f BatchFunc) Batch(loop int, msgs []Message, em *Emitter) error { return f(loop, msgs, em) }

// Sizes of each loop's emit scratch area: payloads beyond scratchBytes are emitted
// directly, and a full area is replayed to rill in the middle of the call.
const (
	scratchRecs  = 4096
	scratchBytes = 256 << 10
)

// Worker is one rill worker: its listeners, loops, sinks and registered computations.
// Its methods may be called from any goroutine.
type Worker struct {
	life sync.RWMutex // Close takes it exclusively; every other C call shares it
	c    *C.rill_worker_t

	threads    int
	nsinks     int
	maxPayload int
	loops      LoopMode
	onPanic    func(*PanicError)

	scratch  *C.rillgo_scratch_t
	emitters []Emitter // one per loop, reused by every callback on that loop

	mu    sync.Mutex // guards comps
	comps map[uint32]*compEntry

	stopping atomic.Bool    // Shutdown was called
	started  atomic.Bool    // Start was called
	userRuns atomic.Int32   // loops being run by callers of Run
	goLoops  sync.WaitGroup // loops that Start runs on goroutines
	loopMu   sync.Mutex
	loopErr  error

	clustered     bool           // Config.Cluster.ZKHosts was set
	memberMu      sync.Mutex     // guards memberCh, memberClosing
	memberCh      chan View      // Membership's channel, made on the first call
	memberClosing bool           // Close has begun: no feeder starts any more
	memberWG      sync.WaitGroup // the Membership feeder goroutine
}

// compEntry is what a registration's cgo.Handle refers to.
type compEntry struct {
	w    *Worker
	id   uint32
	name string
	comp Computation
	// A computation with managed state: stateComp instead of comp, and its value size.
	stateComp StateComputation
	valueSize int
	flusher   Flusher
	releaser  Releaser
	handle    cgo.Handle
	panics    atomic.Uint64
	released  bool // guarded by w.mu
}

// liveHandles counts the cgo.Handles of registrations whose release has not run yet.
var liveHandles atomic.Int64

// ErrClosed is returned by methods of a Worker after Close.
var ErrClosed = errors.New("worker closed")

// applyLimits sets the connection limits and the metrics endpoint of cfg on cc.
func applyLimits(cc *C.rill_config_t, cfg *Config) error {
	if cfg.MaxConns < 0 || cfg.CarryBudget < 0 || cfg.SourceCredit < 0 || cfg.SourceCredit > 1<<30 {
		return fmt.Errorf("rill: MaxConns %d, CarryBudget %d, SourceCredit %d: %w", cfg.MaxConns,
			cfg.CarryBudget, cfg.SourceCredit, ErrRange)
	}
	if cfg.MaxConns > 0 {
		if rc := C.rill_config_set_max_conns(cc, C.unsigned(cfg.MaxConns)); rc < 0 {
			return fmt.Errorf("rill: MaxConns %d: %w", cfg.MaxConns, Errno(rc))
		}
	}
	if cfg.IdleTimeout != 0 {
		ms := C.unsigned(0) // negative: never
		if cfg.IdleTimeout > 0 {
			d := (cfg.IdleTimeout + time.Millisecond - 1) / time.Millisecond
			if d > time.Duration(^uint32(0)) {
				return fmt.Errorf("rill: IdleTimeout %v: %w", cfg.IdleTimeout, ErrRange)
			}
			ms = C.unsigned(d)
		}
		if rc := C.rill_config_set_idle_timeout_ms(cc, ms); rc < 0 {
			return fmt.Errorf("rill: IdleTimeout %v: %w", cfg.IdleTimeout, Errno(rc))
		}
	}
	if cfg.CarryBudget > 0 {
		if rc := C.rill_config_set_carry_budget(cc, C.size_t(cfg.CarryBudget)); rc < 0 {
			return fmt.Errorf("rill: CarryBudget %d: %w", cfg.CarryBudget, Errno(rc))
		}
	}
	if cfg.SourceCredit > 0 {
		if rc := C.rill_config_set_source_credit(cc, C.uint32_t(cfg.SourceCredit)); rc < 0 {
			return fmt.Errorf("rill: SourceCredit %d: %w", cfg.SourceCredit, Errno(rc))
		}
	}
	if cfg.SourceCreditPool != 0 {
		pool := uint64(0) // negative: no sharing
		if cfg.SourceCreditPool > 0 {
			pool = uint64(cfg.SourceCreditPool)
		}
		if rc := C.rill_config_set_source_credit_pool(cc, C.uint64_t(pool)); rc < 0 {
			return fmt.Errorf("rill: SourceCreditPool %d: %w", cfg.SourceCreditPool, Errno(rc))
		}
	}
	if cfg.BusyWait < 0 || cfg.BusyWait > 10*time.Millisecond {
		return fmt.Errorf("rill: BusyWait %v: %w", cfg.BusyWait, ErrRange)
	}
	if cfg.BusyWait > 0 {
		us := (cfg.BusyWait + time.Microsecond - 1) / time.Microsecond
		if rc := C.rill_config_set_busy_wait_us(cc, C.unsigned(us)); rc < 0 {
			return fmt.Errorf("rill: BusyWait %v: %w", cfg.BusyWait, Errno(rc))
		}
	}
	if err := setAddr(cc, "MetricsAddr", cfg.MetricsAddr,
		func(cc *C.rill_config_t, a *C.char) C.int { return C.rill_config_set_metrics_listener(cc, a) }); err != nil {
		return err
	}
	return nil
}

// NewWorker creates a worker from cfg: it binds every listener (so port and address errors
// show here) but starts no loop and opens no sink connection until [Worker.Start] or
// [Worker.Run]. The caller must Close the worker.
func NewWorker(cfg Config) (*Worker, error) {
	if cfg.Logger != nil {
		SetLogger(cfg.Logger) // first, so that NewWorker's own errors reach it
	}
	cc := C.rill_config_new()
	if cc == nil {
		return nil, opError("NewWorker", ErrNoMem)
	}
	defer C.rill_config_destroy(cc)
	threads := cfg.Threads
	if threads == 0 {
		threads = 1
	}
	if threads < 0 {
		return nil, fmt.Errorf("rill: Threads %d: %w", threads, ErrRange)
	}
	if rc := C.rill_config_set_threads(cc, C.unsigned(threads)); rc < 0 {
		return nil, fmt.Errorf("rill: Threads %d: %w", threads, Errno(rc))
	}
	maxFrame := cfg.MaxFrame
	if maxFrame == 0 {
		maxFrame = 1 << 20
	}
	if rc := C.rill_config_set_max_frame(cc, C.uint32_t(maxFrame)); rc < 0 {
		return nil, fmt.Errorf("rill: MaxFrame %d: %w", maxFrame, Errno(rc))
	}
	if cfg.SinkBuffer < 0 {
		return nil, fmt.Errorf("rill: SinkBuffer %d: %w", cfg.SinkBuffer, ErrRange)
	}
	if cfg.SinkBuffer > 0 {
		if rc := C.rill_config_set_sink_buffer(cc, C.size_t(cfg.SinkBuffer)); rc < 0 {
			return nil, fmt.Errorf("rill: SinkBuffer %d: %w", cfg.SinkBuffer, Errno(rc))
		}
	}
	if err := applyLimits(cc, &cfg); err != nil {
		return nil, err
	}
	if cfg.FlushInterval < 0 {
		return nil, fmt.Errorf("rill: FlushInterval %v: %w", cfg.FlushInterval, ErrRange)
	}
	if cfg.FlushInterval > 0 {
		ms := (cfg.FlushInterval + time.Millisecond - 1) / time.Millisecond
		if ms > time.Hour/time.Millisecond {
			return nil, fmt.Errorf("rill: FlushInterval %v: %w", cfg.FlushInterval, ErrRange)
		}
		if rc := C.rill_config_set_flush_interval_ms(cc, C.unsigned(ms)); rc < 0 {
			return nil, fmt.Errorf("rill: FlushInterval %v: %w", cfg.FlushInterval, Errno(rc))
		}
	}
	for i, l := range cfg.Listeners {
		addr := C.CString(l.Addr)
		hasKey := C.int(0)
		if l.HasKey {
			hasKey = 1
		}
		rc := C.rill_config_add_listener(cc, addr, C.rill_framing_t(l.Framing),
			C.uint32_t(l.CompID), hasKey, C.uint64_t(l.Key))
		C.free(unsafe.Pointer(addr))
		if rc < 0 {
			return nil, fmt.Errorf("rill: listener %d (%q): %w", i, l.Addr, Errno(rc))
		}
	}
	for i, s := range cfg.Sinks {
		addr := C.CString(s)
		rc := C.rill_config_add_sink(cc, addr)
		C.free(unsafe.Pointer(addr))
		if rc < 0 {
			return nil, fmt.Errorf("rill: sink %d (%q): %w", i, s, Errno(rc))
		}
	}
	for i, d := range cfg.SinkDelivery {
		if rc := C.rill_config_set_sink_delivery(cc, C.int(i), C.rill_delivery_t(d)); rc < 0 {
			return nil, fmt.Errorf("rill: SinkDelivery[%d] = %d: %w", i, d, Errno(rc))
		}
	}
	if cfg.DeadLetter {
		if rc := C.rill_config_set_dead_letter_sink(cc, C.int(cfg.DeadLetterSink)); rc < 0 {
			return nil, fmt.Errorf("rill: DeadLetterSink %d: %w", cfg.DeadLetterSink, Errno(rc))
		}
	}
	if err := applyCluster(cc, &cfg.Cluster); err != nil {
		return nil, err
	}
	switch cfg.Loops {
	case LoopsDefault, LoopsOnRillThreads, LoopsOnGoThreads:
	default:
		return nil, fmt.Errorf("rill: Loops %d: %w", cfg.Loops, ErrInvalid)
	}

	w := &Worker{
		threads:    threads,
		nsinks:     len(cfg.Sinks),
		maxPayload: int(maxFrame) - 12,
		loops:      cfg.Loops,
		onPanic:    cfg.OnPanic,
		comps:      make(map[uint32]*compEntry),
		clustered:  cfg.Cluster.ZKHosts != "",
	}
	if w.loops == LoopsDefault {
		w.loops = LoopsOnGoThreads
	}
	w.scratch = C.rillgo_scratch_new(C.unsigned(threads), scratchRecs, scratchBytes)
	if w.scratch == nil {
		return nil, opError("NewWorker", ErrNoMem)
	}
	var detail [256]C.char
	if rc := C.rillgo_worker_new(&w.c, cc, &detail[0], C.size_t(len(detail))); rc < 0 {
		C.rillgo_scratch_free(w.scratch, C.unsigned(threads))
		// rill_last_error names what failed ("cannot listen on 127.0.0.1:7700: ..."); its
		// errno text is replaced by the Errno's, so that it is said once.
		what := strings.TrimSuffix(C.GoString(&detail[0]), ": "+Errno(rc).Error())
		if what == "" {
			what = "NewWorker"
		}
		return nil, opError(what, Errno(rc))
	}
	scr := unsafe.Slice(w.scratch, threads)
	w.emitters = make([]Emitter, threads)
	for i := range w.emitters {
		w.emitters[i].init(w, &scr[i])
	}
	return w, nil
}

// Threads returns the number of loop threads.
func (w *Worker) Threads() int { return w.threads }

// MetricsPort returns the port of the metrics endpoint (Config.MetricsAddr), or
// ErrInvalid when none was configured, ErrClosed after Close.
func (w *Worker) MetricsPort() (int, error) {
	w.life.RLock()
	defer w.life.RUnlock()
	if w.c == nil {
		return 0, opError("MetricsPort", ErrClosed)
	}
	rc := C.rill_worker_metrics_port(w.c)
	if rc < 0 {
		return 0, opError("MetricsPort", Errno(rc))
	}
	return int(rc), nil
}

// Ready reports readiness, for a load balancer's or an orchestrator's probe: true when
// every loop runs, the worker is not stopping and no loop failed, every loop's
// connection to every sink is up, and, in a cluster, it is a member of its current view;
// else false and the first reason not met. A closed
// worker is not ready ("closed").
func (w *Worker) Ready() (bool, string) {
	w.life.RLock()
	defer w.life.RUnlock()
	if w.c == nil {
		return false, "closed"
	}
	var why [96]C.char
	if C.rill_worker_ready(w.c, &why[0], C.size_t(len(why))) == 1 {
		return true, ""
	}
	return false, C.GoString(&why[0])
}

// ListenerPort returns the TCP port that listener i (its index in Config.Listeners) is
// bound to; useful with port 0.
func (w *Worker) ListenerPort(i int) (int, error) {
	w.life.RLock()
	defer w.life.RUnlock()
	if w.c == nil {
		return 0, opError(fmt.Sprintf("ListenerPort(%d)", i), ErrClosed)
	}
	if i < 0 {
		return 0, opError(fmt.Sprintf("ListenerPort(%d)", i), ErrInvalid)
	}
	rc := C.rill_worker_listener_port(w.c, C.unsigned(i))
	if rc < 0 {
		return 0, opError(fmt.Sprintf("ListenerPort(%d)", i), Errno(rc))
	}
	return int(rc), nil
}

// Register registers comp under id (name is informational, used in logs and Stats). It
// may be called before or while traffic flows, also from inside a computation. The
// computation may also implement [Flusher] and [Releaser]. Returns [ErrExist] when id is
// taken.
func (w *Worker) Register(id uint32, name string, comp Computation) error {
	if comp == nil {
		return opError(fmt.Sprintf("Register %d (%q)", id, name), ErrInvalid)
	}
	return w.register(&compEntry{id: id, name: name, comp: comp}, comp, 0, "Register")
}

// RegisterState registers comp as a computation with managed state
// (rill_comp_register_state): rill keeps valueSize bytes (1..[StateValueMax]) per key in
// memory of its own, with the key's key group on the loop that runs the group, and hands
// every batch its keys' values. comp may also implement [Flusher] (whose Flush may go
// through the loop's values with [Emitter.ScanState]) and [Releaser]. docs/state.md says
// what is kept across a membership change. Returns [ErrInvalid] for a valueSize out of
// range, [ErrExist] when id is taken.
func (w *Worker) RegisterState(id uint32, name string, valueSize int, comp StateComputation) error {
	if comp == nil || valueSize < 1 || valueSize > StateValueMax {
		return opError(fmt.Sprintf("RegisterState %d (%q)", id, name), ErrInvalid)
	}
	e := &compEntry{id: id, name: name, stateComp: comp, valueSize: valueSize}
	return w.register(e, comp, 0, "RegisterState")
}

// RegisterStateless registers comp like [Worker.Register], for a computation that keeps
// no state per key (RILL_COMP_STATELESS): each batch runs on the loop that read its
// messages (or that emitted them with ToComp) instead of the loop that owns their keys,
// which saves the handoff between loops. Messages of one key may then reach several
// loops at once; those of one connection still arrive in order. In a cluster a message
// still goes to the member that owns its key.
func (w *Worker) RegisterStateless(id uint32, name string, comp Computation) error {
	if comp == nil {
		return opError(fmt.Sprintf("RegisterStateless %d (%q)", id, name), ErrInvalid)
	}
	e := &compEntry{id: id, name: name, comp: comp}
	return w.register(e, comp, C.RILL_COMP_STATELESS, "RegisterStateless")
}

// register registers e (id, name and comp or stateComp set); impl is the user's value,
// which may implement Flusher and Releaser.
func (w *Worker) register(e *compEntry, impl any, flags C.unsigned, what string) error {
	id, name := e.id, e.name
	op := func() string { return fmt.Sprintf("%s %d (%q)", what, id, name) }
	w.life.RLock()
	defer w.life.RUnlock()
	if w.c == nil {
		return opError(op(), ErrClosed)
	}
	e.w = w
	e.flusher, _ = impl.(Flusher)
	e.releaser, _ = impl.(Releaser)
	e.handle = cgo.NewHandle(e)
	liveHandles.Add(1)
	cname := C.CString(name)
	withFlush := C.int(0)
	if e.flusher != nil {
		withFlush = 1
	}
	var rc C.int
	if e.stateComp != nil {
		rc = C.rillgo_register_state(w.c, C.uint32_t(id), cname, C.uintptr_t(e.handle), withFlush,
			C.uint32_t(e.valueSize))
	} else {
		rc = C.rillgo_register(w.c, C.uint32_t(id), cname, C.uintptr_t(e.handle), withFlush, flags)
	}
	C.free(unsafe.Pointer(cname))
	if rc < 0 {
		// rill did not take ctx and will not call release: the handle is ours to delete.
		e.handle.Delete()
		liveHandles.Add(-1)
		return opError(op(), Errno(rc))
	}
	w.mu.Lock()
	if !e.released { // an Unregister may already have run between the C call and here
		w.comps[id] = e
	}
	w.mu.Unlock()
	return nil
}

// Unregister removes the computation registered under id: it waits until no loop can still
// call it, runs its Release (if any) on this goroutine, and deletes its handle. Frames that
// arrive for id afterwards count as unknown. Returns [ErrNotFound] for an unknown id, and
// [ErrLoopThread] when called from inside a computation.
func (w *Worker) Unregister(id uint32) error {
	w.life.RLock()
	defer w.life.RUnlock()
	if w.c == nil {
		return opError(fmt.Sprintf("Unregister %d", id), ErrClosed)
	}
	if rc := C.rill_comp_unregister(w.c, C.uint32_t(id)); rc < 0 {
		return opError(fmt.Sprintf("Unregister %d", id), Errno(rc))
	}
	return nil
}

// Start runs the worker's loops in the background, on locked goroutines (the default) or
// on rill's threads as Config.Loops says, and returns. Returns [ErrState] when the worker
// was started, is being run with Run, or was stopped. On goroutines, a loop that cannot
// run (say, its io_uring cannot be set up) shuts the worker down, and its error is
// returned by Wait, Stop and Close.
func (w *Worker) Start() error {
	w.life.RLock()
	defer w.life.RUnlock()
	if w.c == nil {
		return opError("Start", ErrClosed)
	}
	if w.stopping.Load() || w.userRuns.Load() > 0 || !w.started.CompareAndSwap(false, true) {
		return opError("Start", ErrState)
	}
	if w.loops == LoopsOnRillThreads {
		if rc := C.rill_worker_start(w.c); rc < 0 {
			w.started.Store(false)
			return opError("Start", Errno(rc))
		}
		return nil
	}
	for i := 0; i < w.threads; i++ {
		w.goLoops.Add(1)
		go func(i int) {
			defer w.goLoops.Done()
			err := w.run(i)
			if errors.Is(err, ErrState) && w.stopping.Load() {
				err = nil // stopped before this loop got to run: nothing to drain
			}
			if err != nil {
				w.loopMu.Lock()
				if w.loopErr == nil {
					w.loopErr = opError(fmt.Sprintf("loop %d", i), err)
				}
				w.loopMu.Unlock()
				w.Shutdown() // a loop that cannot run would keep the others from stopping
			}
		}(i)
	}
	return nil
}

// Run runs loop i (0..Threads-1) on the calling goroutine, locked to its OS thread, until
// the worker stops; every loop must be run (by Run or Start) for traffic to flow and for a
// stop to complete. The OS thread is not reused by Go afterwards (it exits with the
// goroutine's lock). Returns nil after a clean drain, [ErrState] if loop i runs already
// or the worker was started, [ErrInvalid] for a bad index.
func (w *Worker) Run(i int) error {
	if i < 0 || i >= w.threads {
		return opError(fmt.Sprintf("Run(%d)", i), ErrInvalid)
	}
	if w.started.Load() {
		return opError(fmt.Sprintf("Run(%d)", i), ErrState)
	}
	w.userRuns.Add(1)
	defer w.userRuns.Add(-1)
	if err := w.run(i); err != nil {
		return opError(fmt.Sprintf("Run(%d)", i), err)
	}
	return nil
}

func (w *Worker) run(i int) error {
	w.life.RLock()
	defer w.life.RUnlock()
	if w.c == nil {
		return ErrClosed
	}
	// Not unlocked: rill may leave thread state behind (the ring was set up with
	// SINGLE_ISSUER for this thread), so the thread ends with this goroutine.
	runtime.LockOSThread()
	if rc := C.rill_worker_run(w.c, C.unsigned(i)); rc < 0 {
		return Errno(rc)
	}
	return nil
}

// Shutdown asks every loop to drain and exit, and returns at once. Idempotent; may be
// called from anywhere, computations included. Use Wait or Stop to wait for the drain.
func (w *Worker) Shutdown() {
	w.stopping.Store(true)
	w.life.RLock()
	defer w.life.RUnlock()
	if w.c != nil {
		C.rill_worker_shutdown(w.c)
	}
}

// Wait waits until every loop has exited after Shutdown, and returns the error of a loop
// that Start could not run, if any. Not from inside a computation ([ErrLoopThread]).
func (w *Worker) Wait() error {
	w.life.RLock()
	defer w.life.RUnlock()
	if w.c == nil {
		return opError("Wait", ErrClosed)
	}
	if rc := C.rill_worker_wait(w.c); rc < 0 {
		return opError("Wait", Errno(rc))
	}
	w.goLoops.Wait()
	w.loopMu.Lock()
	defer w.loopMu.Unlock()
	return w.loopErr
}

// Stop drains the worker and returns when every loop has exited: loops stop accepting,
// process what they received, run every Flusher, and send what is queued for sinks
// (waiting at most 5 s). Idempotent. Not from inside a computation ([ErrLoopThread]).
func (w *Worker) Stop() error {
	w.Shutdown()
	return w.Wait()
}

// Close stops the worker if needed, waits for the [Worker.Membership] goroutine to end
// (its channel is closed), releases every computation still registered (their
// Release methods run on this goroutine), and frees the worker. Further calls return
// ErrClosed. Not from inside a computation ([ErrLoopThread]).
func (w *Worker) Close() error {
	if err := w.Stop(); err != nil {
		if errors.Is(err, ErrClosed) || errors.Is(err, ErrLoopThread) {
			return err
		}
		// a loop failed to run; the worker has stopped all the same: go on closing.
	}
	// The worker is shut down, so the Membership feeder's wait in C returns within 50 ms;
	// it must be gone before the C worker is freed.
	w.stopMembership()
	w.life.Lock()
	defer w.life.Unlock()
	if w.c == nil {
		return opError("Close", ErrClosed)
	}
	C.rill_worker_destroy(w.c) // runs the remaining release callbacks
	w.c = nil
	C.rillgo_scratch_free(w.scratch, C.unsigned(w.threads))
	w.scratch = nil
	for i := range w.emitters {
		w.emitters[i] = Emitter{}
	}
	return nil
}

// report hands a recovered panic to Config.OnPanic, or logs it.
func (w *Worker) report(p *PanicError) {
	if w.onPanic != nil {
		defer func() { _ = recover() }() // a panicking handler must not take the loop down
		w.onPanic(p)
		return
	}
	log.Printf("%v\n%s", p, p.Stack)
}

// sortComps returns the registered computations by id.
func (w *Worker) sortedComps() []*compEntry {
	w.mu.Lock()
	out := make([]*compEntry, 0, len(w.comps))
	for _, e := range w.comps {
		out = append(out, e)
	}
	w.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].id < out[j].id })
	return out
}
