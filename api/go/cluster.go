package rill

/*
#include <stdlib.h>
#include <string.h>
#include <rill/rill.h>
*/
import "C"

import (
	"fmt"
	"time"
	"unsafe"
)

// ClusterConfig makes a worker a member of a cluster coordinated by ZooKeeper
// (docs/cluster.md): each frame is processed by the one member that owns its key
// (rendezvous hashing over the current [View]); frames whose key another member owns are
// forwarded to it. A worker is clustered when ZKHosts is set.
type ClusterConfig struct {
	// ZKHosts is the ZooKeeper connect string, "127.0.0.1:2181,..."; empty means the
	// worker is not clustered and the other fields are ignored.
	ZKHosts string
	// Root is the cluster's path in ZooKeeper, such as "/rill/demo" (required).
	Root string
	// WorkerID names this member: 1..63 characters of [A-Za-z0-9_.-]. Empty generates
	// "w-<host>-<pid>-<random>", stable for the life of the worker.
	WorkerID string
	// PeerAddr is the "HOST:PORT" on which this worker accepts frames forwarded by the
	// other members (required; port 0 picks a free port). It is published in ZooKeeper,
	// so it must be reachable by them.
	PeerAddr string
	// PeerAdvertise, when set, is the "HOST:PORT" other members are told to use instead
	// of PeerAddr (NAT, mapped container ports, a proxy).
	PeerAdvertise string
	// SourceAdvertise, when set, is the "HOST:PORT" this worker publishes as its source
	// address: when another member leaves, its GOAWAY may send acked sources there.
	// Default: the first rill-framed listener's address and port, a wildcard host
	// replaced by the published peer address's host.
	SourceAdvertise string
	// SessionTimeout is the ZooKeeper session timeout, 1 s..120 s, rounded up to whole
	// milliseconds; 0 means the default (10 s).
	SessionTimeout time.Duration
	// KeyGroups is the number of key groups of the cluster, 1..65536; 0 means the default
	// (4096). Members own groups of keys. The first member to join Root sets the number
	// and every member uses the one it finds there (a different setting is logged).
	KeyGroups int
	// Auth is "user:password" for ZooKeeper digest authentication; the znodes rill
	// creates can then be changed only by this identity. A [Secret]: it is never logged
	// and prints as "[redacted]".
	Auth Secret
}

// Secret is a string that does not show itself: fmt prints it (with any verb, also inside
// a struct printed with %v or %+v) and encoding packages marshal it as "[redacted]", or
// as "" when it is empty. Convert it to a string to read the value.
type Secret string

const redacted = "[redacted]"

func (s Secret) shown() string {
	if s == "" {
		return ""
	}
	return redacted
}

// String returns "[redacted]" ("" for an empty secret).
func (s Secret) String() string { return s.shown() }

// GoString returns a quoted "[redacted]" ("" for an empty secret), for %#v.
func (s Secret) GoString() string { return fmt.Sprintf("%q", s.shown()) }

// Format writes "[redacted]" ("" for an empty secret) whatever the verb, so that %x, %q
// or %s cannot reveal the value.
func (s Secret) Format(f fmt.State, verb rune) {
	if verb == 'v' && f.Flag('#') {
		fmt.Fprint(f, s.GoString())
		return
	}
	fmt.Fprint(f, s.shown())
}

// MarshalText returns "[redacted]" ("" for an empty secret), so that encoding/json and
// the like do not reveal the value either.
func (s Secret) MarshalText() ([]byte, error) { return []byte(s.shown()), nil }

// setAddr passes a "HOST:PORT" option to its C setter when it is set; name is the
// option's field in error messages.
func setAddr(cc *C.rill_config_t, name, addr string, set func(*C.rill_config_t, *C.char) C.int) error {
	if addr == "" {
		return nil
	}
	a := C.CString(addr)
	rc := set(cc, a)
	C.free(unsafe.Pointer(a))
	if rc < 0 {
		return fmt.Errorf("rill: %s %q: %w", name, addr, Errno(rc))
	}
	return nil
}

// applyCluster sets the cluster options of cc. Error messages never contain Auth.
func applyCluster(cc *C.rill_config_t, cl *ClusterConfig) error {
	if cl.ZKHosts == "" {
		if cl.Root != "" || cl.WorkerID != "" || cl.PeerAddr != "" || cl.Auth != "" ||
			cl.SessionTimeout != 0 || cl.PeerAdvertise != "" || cl.SourceAdvertise != "" ||
			cl.KeyGroups != 0 {
			return fmt.Errorf("rill: Cluster: ZKHosts is required: %w", ErrInvalid)
		}
		return nil
	}
	if cl.PeerAddr == "" {
		return fmt.Errorf("rill: Cluster: PeerAddr is required: %w", ErrInvalid)
	}
	hosts, root, peer := C.CString(cl.ZKHosts), C.CString(cl.Root), C.CString(cl.PeerAddr)
	var id *C.char
	if cl.WorkerID != "" {
		id = C.CString(cl.WorkerID)
	}
	rc := C.rill_config_set_cluster(cc, hosts, root, id, peer)
	C.free(unsafe.Pointer(hosts))
	C.free(unsafe.Pointer(root))
	C.free(unsafe.Pointer(peer))
	C.free(unsafe.Pointer(id))
	if rc < 0 {
		return fmt.Errorf("rill: Cluster (ZKHosts %q, Root %q, WorkerID %q, PeerAddr %q): %w",
			cl.ZKHosts, cl.Root, cl.WorkerID, cl.PeerAddr, Errno(rc))
	}
	if err := setAddr(cc, "Cluster.PeerAdvertise", cl.PeerAdvertise,
		func(cc *C.rill_config_t, a *C.char) C.int { return C.rill_config_set_peer_advertise(cc, a) }); err != nil {
		return err
	}
	if err := setAddr(cc, "Cluster.SourceAdvertise", cl.SourceAdvertise,
		func(cc *C.rill_config_t, a *C.char) C.int { return C.rill_config_set_source_advertise(cc, a) }); err != nil {
		return err
	}
	if cl.SessionTimeout < 0 {
		return fmt.Errorf("rill: Cluster.SessionTimeout %v: %w", cl.SessionTimeout, ErrRange)
	}
	if cl.SessionTimeout > 0 {
		ms := (cl.SessionTimeout + time.Millisecond - 1) / time.Millisecond
		if ms > 1<<31 {
			ms = 1 << 31 // out of range all the same; keeps the conversion below exact
		}
		if rc := C.rill_config_set_session_timeout_ms(cc, C.unsigned(ms)); rc < 0 {
			return fmt.Errorf("rill: Cluster.SessionTimeout %v: %w", cl.SessionTimeout, Errno(rc))
		}
	}
	if cl.KeyGroups < 0 || cl.KeyGroups > 1<<16 {
		return fmt.Errorf("rill: Cluster.KeyGroups %d: %w", cl.KeyGroups, ErrRange)
	}
	if cl.KeyGroups > 0 {
		if rc := C.rill_config_set_key_groups(cc, C.unsigned(cl.KeyGroups)); rc < 0 {
			return fmt.Errorf("rill: Cluster.KeyGroups %d: %w", cl.KeyGroups, Errno(rc))
		}
	}
	if cl.Auth != "" {
		n := len(cl.Auth)
		auth := C.CString(string(cl.Auth))
		rc := C.rill_config_set_cluster_auth(cc, auth)
		C.memset(unsafe.Pointer(auth), 0, C.size_t(n)) // rill wipes its own copy
		C.free(unsafe.Pointer(auth))
		if rc < 0 {
			// never the value: it may be a password with a typo
			return fmt.Errorf("rill: Cluster.Auth (want \"user:password\"): %w", Errno(rc))
		}
	}
	return nil
}

// Member is one member of a cluster view.
type Member struct {
	ID     string // its worker id
	Addr   string // the "HOST:PORT" where it accepts forwarded frames
	Source string // its source address as published (where a GOAWAY may send acked sources), or ""
}

// View is a snapshot of a cluster's membership: a plain value, safe to keep and share.
type View struct {
	// Epoch grows with every change ZooKeeper records among the members (the cversion of
	// <root>/members); views with the same epoch have the same members.
	Epoch uint64
	// Members are sorted by ID.
	Members []Member
	// Self is this worker's index in Members, or -1 when it is not (or no longer) a member.
	Self int
	// KeyGroups is the cluster's number of key groups (ClusterConfig.KeyGroups, as the
	// cluster agreed): members own groups of keys, and Worker.Owner is the owner of a
	// key's group.
	KeyGroups int
}

// goView copies a C view into a View.
func goView(cv *C.rill_view_t) View {
	n := int(C.rill_view_size(cv))
	v := View{Epoch: uint64(C.rill_view_epoch(cv)), Self: int(C.rill_view_self(cv)),
		Members: make([]Member, n), KeyGroups: int(C.rill_view_key_groups(cv))}
	for i := 0; i < n; i++ {
		v.Members[i] = Member{ID: C.GoString(C.rill_view_member(cv, C.unsigned(i))),
			Addr:   C.GoString(C.rill_view_member_addr(cv, C.unsigned(i))),
			Source: C.GoString(C.rill_view_member_source(cv, C.unsigned(i)))}
	}
	return v
}

// View returns the worker's current view of the cluster, and false when the worker is not
// clustered, has no view yet (its loops have not joined) or is closed.
func (w *Worker) View() (View, bool) {
	w.life.RLock()
	defer w.life.RUnlock()
	return w.viewLocked()
}

// viewLocked is View for a caller holding w.life.
func (w *Worker) viewLocked() (View, bool) {
	if w.c == nil || !w.clustered {
		return View{}, false
	}
	cv := C.rill_worker_view(w.c)
	if cv == nil {
		return View{}, false
	}
	defer C.rill_view_destroy(cv)
	return goView(cv), true
}

// Owner returns the index, in the worker's current view, of the member that owns key
// (what rill routes by: the owner of the key's group, computed by the C library), and that view's
// epoch; compare it with [View.Epoch] before indexing a View's Members with it. Returns
// -1 and 0 when the worker is not clustered, has no view yet or is closed.
func (w *Worker) Owner(key uint64) (member int, epoch uint64) {
	w.life.RLock()
	defer w.life.RUnlock()
	if w.c == nil || !w.clustered {
		return -1, 0
	}
	cv := C.rill_worker_view(w.c)
	if cv == nil {
		return -1, 0
	}
	defer C.rill_view_destroy(cv)
	return int(C.rill_view_owner(cv, C.uint64_t(key))), uint64(C.rill_view_epoch(cv))
}

// Membership returns a channel of the worker's cluster views: the current one (once the
// worker has joined) and then each new one as the membership changes.
//
// The channel holds one view, and a newer view replaces one that was not received yet:
// a slow reader skips intermediate views but always gets the latest, and the worker
// never waits for its reader. One goroutine per worker feeds it, started on the first
// call; later calls return the same channel. The goroutine waits in C for a change
// (rill_worker_view_wait) and ends when the worker shuts down ([Worker.Shutdown],
// [Worker.Stop], [Worker.Close] or a loop that cannot run), closing the channel; Close
// waits for it before freeing the worker. The channel is closed at once for a worker
// that is not clustered or already shut down.
func (w *Worker) Membership() <-chan View {
	w.memberMu.Lock()
	defer w.memberMu.Unlock()
	if w.memberCh != nil {
		return w.memberCh
	}
	ch := make(chan View, 1)
	w.memberCh = ch
	if w.memberClosing || !w.clustered {
		close(ch)
		return ch
	}
	w.memberWG.Add(1)
	go w.feedMembership(ch)
	return ch
}

// viewWaitMs bounds each wait in C, so that the feeder also notices a stop that C's own
// stop flag would not show (it polls that one every 50 ms).
const viewWaitMs = 1000

// feedMembership is Membership's goroutine.
func (w *Worker) feedMembership(ch chan View) {
	defer w.memberWG.Done()
	defer close(ch)
	var last uint64
	sent := false
	for {
		if w.stopping.Load() {
			return
		}
		w.life.RLock()
		if w.c == nil {
			w.life.RUnlock()
			return
		}
		v, ok := w.viewLocked()
		if !ok || (sent && v.Epoch == last) {
			// Blocks in C on the view's condition variable until the epoch differs from
			// last, the timeout passes, or the worker shuts down (noticed within 50 ms).
			// The shared lock keeps Close from freeing the worker meanwhile.
			rc := C.rill_worker_view_wait(w.c, C.uint64_t(last), viewWaitMs)
			if rc == 1 {
				v, ok = w.viewLocked()
			}
			if rc < 0 {
				w.life.RUnlock()
				return
			}
		}
		w.life.RUnlock()
		if ok && (!sent || v.Epoch != last) {
			last, sent = v.Epoch, true
			replaceSend(ch, v)
		}
	}
}

// replaceSend puts v in ch (capacity 1, one sender), dropping a view not received yet.
func replaceSend(ch chan View, v View) {
	for {
		select {
		case ch <- v:
			return
		default:
		}
		select {
		case <-ch:
		default:
		}
	}
}

// stopMembership makes sure no feeder starts any more and waits for the running one.
// Called by Close after the worker was shut down (which releases the feeder's wait).
func (w *Worker) stopMembership() {
	w.memberMu.Lock()
	w.memberClosing = true
	w.memberMu.Unlock()
	w.memberWG.Wait()
}
