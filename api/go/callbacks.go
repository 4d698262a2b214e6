package rill

/*
#include "shim.h"
*/
import "C"

import (
	"runtime/cgo"
	"runtime/debug"
	"unsafe"
)

// The C shim's callbacks. Each returns the loop's scratch buffer, holding the call's
// result code and the emits to replay; the shim replays them after the call returns.

//export rillgoBatch
func rillgoBatch(h C.uintptr_t, loop C.unsigned, msgs *C.rill_msg_t, n C.size_t,
	em *C.rill_emitter_t) *C.rillgo_scratch_t {
	e, ok := cgo.Handle(h).Value().(*compEntry)
	if !ok || int(loop) >= e.w.threads {
		return nil
	}
	ems := &e.w.emitters[loop]
	ems.begin(em)
	var ms []Message
	if n > 0 {
		ms = unsafe.Slice((*Message)(unsafe.Pointer(msgs)), int(n))
	}
	return ems.end(e.batch(int(loop), ms, ems))
}

func (e *compEntry) batch(loop int, ms []Message, em *Emitter) (rc int) {
	defer func() {
		if v := recover(); v != nil {
			rc = e.recovered(loop, v)
		}
	}()
	return resultCode(e.comp.Batch(loop, ms, em))
}

// resultCode is what a callback returns to rill for err: 0, the Errno, or -1.
func resultCode(err error) int {
	if err == nil {
		return 0
	}
	if code, ok := err.(Errno); ok && code < 0 {
		return int(code)
	}
	return -1
}

//export rillgoBatchState
func rillgoBatchState(h C.uintptr_t, loop C.unsigned, msgs *C.rill_msg_t, values *unsafe.Pointer,
	n C.size_t, em *C.rill_emitter_t) *C.rillgo_scratch_t {
	e, ok := cgo.Handle(h).Value().(*compEntry)
	if !ok || e.stateComp == nil || int(loop) >= e.w.threads {
		return nil
	}
	ems := &e.w.emitters[loop]
	ems.begin(em)
	ems.valueSize = e.valueSize
	var ms []Message
	st := State{size: e.valueSize}
	if n > 0 {
		ms = unsafe.Slice((*Message)(unsafe.Pointer(msgs)), int(n))
		st.values = unsafe.Slice(values, int(n))
	}
	return ems.end(e.batchState(int(loop), ms, st, ems))
}

func (e *compEntry) batchState(loop int, ms []Message, st State, em *Emitter) (rc int) {
	defer func() {
		if v := recover(); v != nil {
			rc = e.recovered(loop, v)
		}
	}()
	return resultCode(e.stateComp.BatchState(loop, ms, st, em))
}

//export rillgoFlush
func rillgoFlush(h C.uintptr_t, loop C.unsigned, em *C.rill_emitter_t) *C.rillgo_scratch_t {
	e, ok := cgo.Handle(h).Value().(*compEntry)
	if !ok || e.flusher == nil || int(loop) >= e.w.threads {
		return nil
	}
	ems := &e.w.emitters[loop]
	ems.begin(em)
	ems.valueSize = e.valueSize
	return ems.end(e.flush(int(loop), ems))
}

func (e *compEntry) flush(loop int, em *Emitter) (rc int) {
	defer func() {
		if v := recover(); v != nil {
			rc = e.recovered(loop, v)
		}
	}()
	e.flusher.Flush(loop, em)
	return 0
}

func (e *compEntry) recovered(loop int, v any) int {
	e.panics.Add(1)
	e.w.report(&PanicError{CompID: e.id, Name: e.name, Loop: loop, Value: v,
		Stack: debug.Stack()})
	return -1
}

//export rillgoRelease
func rillgoRelease(h C.uintptr_t) {
	hd := cgo.Handle(h)
	e, ok := hd.Value().(*compEntry)
	if !ok {
		return
	}
	e.w.mu.Lock()
	e.released = true
	if e.w.comps[e.id] == e {
		delete(e.w.comps, e.id)
	}
	e.w.mu.Unlock()
	hd.Delete()
	liveHandles.Add(-1)
	if e.releaser != nil {
		defer func() {
			if v := recover(); v != nil {
				e.w.report(&PanicError{CompID: e.id, Name: e.name, Loop: -1, Value: v,
					Stack: debug.Stack()})
			}
		}()
		e.releaser.Release()
	}
}
