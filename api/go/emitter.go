package rill

/*
#include "shim.h"
*/
import "C"

import (
	"math"
	"unsafe"
)

// maxSinks is rill's limit on Config.Sinks (RILL_MAX_SINKS).
const maxSinks = 16

// controlCompID is reserved for control frames (RILL_CONTROL_COMP_ID): no data frame has it.
const controlCompID = 0xFFFFFFFF

// frameHeader is the bytes a v1 frame takes besides its payload.
const frameHeader = 16

// Emitter sends a computation's output. It is valid only during the Batch or Flush call
// that received it, on that call's goroutine. Emits are copied into the loop's C scratch
// buffer and handed to rill, in order, when the call returns (or earlier, when the buffer
// fills up); a payload larger than the buffer (256 KiB) is handed over at once.
type Emitter struct {
	w    *Worker
	em   *C.rill_emitter_t // nil outside a call
	scr  *C.rillgo_scratch_t
	recs []C.rillgo_rec_t // views of scr's C memory
	data []byte
	nrec int
	used int
	// What each sink still takes in this call (rill_emit_sink_room, asked the first time
	// the call emits to it), less what ToSink predicted would fit since: exact, because
	// nothing else fills or empties a loop's sink queue while its callback runs.
	roomKnown uint32
	room      [maxSinks]int64
	// The value size of the managed computation being called back (0: not managed).
	valueSize int
}

func (e *Emitter) init(w *Worker, scr *C.rillgo_scratch_t) {
	e.w = w
	e.scr = scr
	e.recs = unsafe.Slice(scr.recs, int(scr.caprec))
	e.data = unsafe.Slice((*byte)(unsafe.Pointer(scr.data)), int(scr.cap))
}

func (e *Emitter) begin(em *C.rill_emitter_t) {
	e.em = em
	e.nrec = 0
	e.used = 0
	e.roomKnown = 0
	e.valueSize = 0
}

// end publishes the call's result and records for the shim, and retires the emitter.
func (e *Emitter) end(rc int) *C.rillgo_scratch_t {
	e.scr.nrec = C.uint32_t(e.nrec)
	e.scr.rc = C.int(rc)
	e.em = nil
	return e.scr
}

// ToSink queues a v1 frame (compID, key, data) for sink number sink (its index in
// Config.Sinks); data is copied. Returns what rill_emit_sink returns: [ErrFull] when the
// sink's buffer (Config.SinkBuffer) cannot take the frame, which is then dropped and
// counted in Stats.SinkDropped (an acked sink is never full); [ErrInvalid] for a bad sink
// index, compID 0xFFFFFFFF (reserved for control frames) or a payload above MaxFrame-12;
// [ErrState] outside a callback. Emits reach rill after the call, but the answer is known
// now: rill tells at the call's first emit to a sink how much it takes, and nothing else
// changes that during the call (only a failed allocation in rill, which drops and
// counts the frame too, goes unreported).
func (e *Emitter) ToSink(sink int, compID uint32, key uint64, data []byte) error {
	if uint(sink) >= uint(e.w.nsinks) || compID == controlCompID {
		return ErrInvalid
	}
	if e.em == nil {
		return ErrState
	}
	if len(data) > e.w.maxPayload {
		return ErrInvalid
	}
	if e.roomKnown&(1<<sink) == 0 {
		room := uint64(C.rill_emit_sink_room(e.em, C.int(sink)))
		if room > math.MaxInt64 {
			room = math.MaxInt64 // an acked sink
		}
		e.room[sink] = int64(room)
		e.roomKnown |= 1 << sink
	}
	need := int64(frameHeader + len(data))
	if need > e.room[sink] {
		// Handed over all the same, so that rill drops and counts it as it would a C emit.
		if err := e.put(int32(sink), compID, key, data); err != nil {
			return err
		}
		return ErrFull
	}
	if err := e.put(int32(sink), compID, key, data); err != nil {
		return err
	}
	e.room[sink] -= need
	return nil
}

// ToComp sends a message to computation compID, routed by key like an ingested frame (it
// may run on another loop); data is copied. It is processed after the current call.
// Returns [ErrInvalid] for compID 0xFFFFFFFF (reserved) or a payload above MaxFrame-12,
// [ErrState] outside a callback.
func (e *Emitter) ToComp(compID uint32, key uint64, data []byte) error {
	if compID == controlCompID {
		return ErrInvalid
	}
	return e.put(-1, compID, key, data)
}

func (e *Emitter) put(sink int32, compID uint32, key uint64, data []byte) error {
	if e.em == nil {
		return ErrState
	}
	n := len(data)
	if n > e.w.maxPayload {
		return ErrInvalid
	}
	if e.nrec == len(e.recs) || n > len(e.data)-e.used {
		if err := e.spill(); err != nil {
			return err
		}
		if n > len(e.data) {
			var p unsafe.Pointer
			if n > 0 {
				p = unsafe.Pointer(&data[0]) // rill copies it during the call
			}
			if rc := C.rillgo_emit(e.em, C.int32_t(sink), C.uint32_t(compID), C.uint64_t(key),
				p, C.size_t(n)); rc < 0 && rc != C.RILL_EFULL {
				return Errno(rc)
			}
			return nil
		}
	}
	r := &e.recs[e.nrec]
	r.key = C.uint64_t(key)
	r.comp_id = C.uint32_t(compID)
	r.sink = C.int32_t(sink)
	r.off = C.uint32_t(e.used)
	r.len = C.uint32_t(n)
	copy(e.data[e.used:], data)
	e.used += n
	e.nrec++
	return nil
}

// spill hands the recorded emits to rill now (one cgo call for the whole buffer).
func (e *Emitter) spill() error {
	if e.nrec == 0 {
		e.used = 0
		return nil
	}
	e.scr.nrec = C.uint32_t(e.nrec)
	rc := C.rillgo_replay(e.scr, e.em)
	e.nrec = 0
	e.used = 0
	if rc < 0 {
		return Errno(rc)
	}
	return nil
}

// ScanState calls fn with every key of this loop's managed state whose value is not all
// zero, and a view of the value, until fn returns false or the keys run out. The view is
// writable (writing zeros deletes the key) and valid only until the call that received
// em returns. Only in the BatchState or Flush call of a computation registered with
// [Worker.RegisterState]: [ErrInvalid] in any other, [ErrState] outside a call. One cgo
// call fetches 256 keys.
func (e *Emitter) ScanState(fn func(key uint64, value []byte) bool) error {
	if e.em == nil {
		return ErrState
	}
	if e.valueSize == 0 {
		return ErrInvalid
	}
	keys := unsafe.Slice(e.scr.scan_keys, C.RILLGO_SCAN)
	values := unsafe.Slice(e.scr.scan_values, C.RILLGO_SCAN)
	var cursor C.uint64_t
	for {
		got := C.rill_state_scan(e.em, &cursor, e.scr.scan_keys, e.scr.scan_values, C.RILLGO_SCAN)
		if got < 0 {
			return Errno(got)
		}
		if got == 0 {
			return nil
		}
		for i := 0; i < int(got); i++ {
			if !fn(uint64(keys[i]), unsafe.Slice((*byte)(values[i]), e.valueSize)) {
				return nil
			}
		}
	}
}
