package rill

/*
#include "shim.h"
*/
import "C"

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
)

// libLogger receives the C library's log lines; nil: rill prints them to stderr.
var libLogger atomic.Pointer[slog.Logger]

// SetLogger sends every log line of the C library, from every worker of the process, to
// l: errors (a port that cannot be bound, a loop's ring, a thread) at [slog.LevelError],
// what rill worked around and counted (a connection closed, a sink retried, a frame
// dropped) at [slog.LevelWarn], changes of state (joined, left, connected) at
// [slog.LevelInfo]. Each record has the attribute lib=rill. nil sends them back to
// stderr. The C library's hook is process-wide, so the last call wins; Config.Logger
// calls SetLogger from NewWorker.
//
// Records come from rill's threads (a loop, the cluster or metrics thread) or from the
// goroutine calling into rill, one cgo callback per line; lines are rare (a condition
// that repeats per message is counted and logged once), but the handler must not block
// for long, or it stalls the loop that logged. The ZooKeeper client's own lines still go
// to stderr.
func SetLogger(l *slog.Logger) {
	logHookMu.Lock()
	defer logHookMu.Unlock()
	libLogger.Store(l)
	// The C hook changes only between "none" and "ours" (the logger itself is swapped in
	// Go): C's hook must not be replaced while a thread may be logging through it twice.
	switch {
	case l == nil && logHooked:
		C.rill_set_log_callback(nil, 0)
		logHooked = false
	case l != nil && !logHooked:
		C.rillgo_set_log_callback()
		logHooked = true
	}
}

var (
	logHookMu sync.Mutex
	logHooked bool // the C hook points at rillgoLog; guarded by logHookMu
)

//export rillgoLog
func rillgoLog(level C.int, msg *C.char) {
	l := libLogger.Load()
	if l == nil { // SetLogger(nil) raced with a line already on its way: as C would print it
		fmt.Fprintf(os.Stderr, "rill: %s\n", C.GoString(msg))
		return
	}
	lv := slog.LevelWarn
	switch level {
	case C.RILL_LOG_ERROR:
		lv = slog.LevelError
	case C.RILL_LOG_INFO:
		lv = slog.LevelInfo
	}
	ctx := context.Background()
	if l.Enabled(ctx, lv) {
		l.LogAttrs(ctx, lv, C.GoString(msg), slog.String("lib", "rill"))
	}
}
