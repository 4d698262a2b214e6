package rill

/*
#include <rill/rill.h>
*/
import "C"

import (
	"fmt"
	"syscall"
)

// Errno is an error code returned by the C library: one of the Err* constants below
// (rill's own conditions), or a negated operating-system errno.
type Errno int

// rill's own error codes (RILL_E* in rill.h).
const (
	ErrInvalid     Errno = C.RILL_EINVAL       // invalid argument
	ErrState       Errno = C.RILL_ESTATE       // not valid in the object's current state
	ErrNoMem       Errno = C.RILL_ENOMEM       // out of memory
	ErrExist       Errno = C.RILL_EEXIST       // a computation with this id is registered
	ErrNotFound    Errno = C.RILL_ENOENT       // no computation with this id is registered
	ErrAddr        Errno = C.RILL_EADDR        // cannot parse address (expected HOST:PORT)
	ErrFrameShort  Errno = C.RILL_EFRAME_SHORT // frame length below the 12-byte minimum
	ErrFrameLong   Errno = C.RILL_EFRAME_LONG  // frame length above max_frame
	ErrLoopThread  Errno = C.RILL_ELOOPTHREAD  // call not allowed from a loop thread
	ErrRange       Errno = C.RILL_ERANGE       // value out of range
	ErrFull        Errno = C.RILL_EFULL        // outbound queue full
	ErrUnsupported Errno = C.RILL_EUNSUPPORTED // not supported by this kernel (io_uring) or this build of rill
	ErrControl     Errno = C.RILL_ECONTROL     // malformed control frame (acknowledged streams)
)

// Error returns rill_strerror's description ("invalid argument", "address already in
// use"). It carries no "rill: " prefix: the package's errors wrap an Errno once with what
// failed ("rill: listener 0 (\"127.0.0.1:7700\"): ..."), and the [Emitter]'s methods,
// which run per message, return the bare Errno without allocating.
func (e Errno) Error() string {
	return C.GoString(C.rill_strerror(C.int(e)))
}

// opError wraps err once with the operation and what it was applied to.
func opError(op string, err error) error {
	return fmt.Errorf("rill: %s: %w", op, err)
}

// Name returns rill_err_name's name for the code ("RILL_EINVAL", "ECONNREFUSED", ...).
func (e Errno) Name() string {
	return C.GoString(C.rill_err_name(C.int(e)))
}

// Is reports whether a negated errno matches target as a [syscall.Errno], so that
// errors.Is(err, syscall.EADDRINUSE) works.
func (e Errno) Is(target error) bool {
	if se, ok := target.(syscall.Errno); ok {
		return e < 0 && e > -4096 && syscall.Errno(-e) == se
	}
	return false
}

// Version returns the version string of the linked C library ("MAJOR.MINOR.PATCH").
func Version() string {
	return C.GoString(C.rill_version_string())
}

// ClusterSupported reports whether the linked C library was built with cluster support
// (CMake option RILL_CLUSTER, on by default). Without it, a Config with Cluster.ZKHosts
// set fails in NewWorker with [ErrUnsupported].
func ClusterSupported() bool {
	return C.rill_features()&C.RILL_FEATURE_CLUSTER != 0
}
