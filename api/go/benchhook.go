package rill

/*
#include <stdlib.h>
#include "shim.h"
*/
import "C"

import (
	"runtime"
	"time"
	"unsafe"
)

// benchCalls makes `iters` calls of the batch callback of computation id, each with the
// same batch of `batch` 64-byte messages in C memory, straight from C: on a thread that C
// creates (newThread) or on the calling goroutine's locked OS thread. It measures the
// C→Go crossing and the binding's per-call work, without sockets. For benchmarks only;
// the computation must not emit.
func (w *Worker) benchCalls(id uint32, batch int, iters int64, newThread bool) (time.Duration, error) {
	w.mu.Lock()
	e := w.comps[id]
	w.mu.Unlock()
	if e == nil {
		return 0, ErrNotFound
	}
	payload := (*C.uint8_t)(C.calloc(C.size_t(batch), 64))
	msgs := (*C.rill_msg_t)(C.calloc(C.size_t(batch), C.size_t(unsafe.Sizeof(C.rill_msg_t{}))))
	defer C.free(unsafe.Pointer(payload))
	defer C.free(unsafe.Pointer(msgs))
	ms := unsafe.Slice(msgs, batch)
	for i := range ms {
		ms[i].data = (*C.uint8_t)(unsafe.Add(unsafe.Pointer(payload), i*64))
		ms[i].len = 64
		ms[i].comp_id = C.uint32_t(id)
		ms[i].key = C.uint64_t(i)
	}
	nt := C.int(0)
	if newThread {
		nt = 1
	} else {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
	}
	ns := C.rillgo_bench_calls(C.uintptr_t(e.handle), msgs, C.size_t(batch), C.int64_t(iters), nt)
	if ns < 0 {
		return 0, ErrNoMem
	}
	return time.Duration(ns), nil
}
