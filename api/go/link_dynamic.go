//go:build rill_dynamic

package rill

// -tags rill_dynamic: link librill.so (found through rill.pc); the binary then needs it
// at run time, on the loader's path, through LD_LIBRARY_PATH, or an rpath.

/*
#cgo pkg-config: rill
*/
import "C"
