//go:build !rill_dynamic

package rill

// The default: librill and its dependencies are linked into the Go binary (rill-static.pc
// names their archives), so it runs without librill.so or LD_LIBRARY_PATH, and needs
// only libc at run time. Build with -tags rill_dynamic to link librill.so instead.

/*
#cgo pkg-config: rill-static
*/
import "C"
