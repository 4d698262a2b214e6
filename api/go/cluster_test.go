package rill

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// One throwaway ZooKeeper server (scripts/zk-server) for every cluster test of the run,
// started by the first test that needs it and stopped by TestMain.
var zk struct {
	once sync.Once
	dir  string
	port string
	skip string // why cluster tests skip, when they do
	err  error
}

func TestMain(m *testing.M) {
	if id := os.Getenv("RILL_GO_MEMBER"); id != "" {
		os.Exit(runMember(id)) // a member process of TestManagedStateSurvivesKill
	}
	code := m.Run()
	if zk.dir != "" {
		stop := exec.Command("../../scripts/zk-server", "stop", zk.dir)
		stop.Stderr = os.Stderr
		_ = stop.Run()
		os.RemoveAll(zk.dir)
	}
	os.Exit(code)
}

// zkHosts returns the connect string of the test ZooKeeper, starting it on first use; it
// skips the test when java or ZooKeeper is not installed.
func zkHosts(t *testing.T) string {
	t.Helper()
	zk.once.Do(func() {
		if _, err := exec.LookPath("java"); err != nil {
			zk.skip = "java is not installed (scripts/setup installs it): no ZooKeeper for cluster tests"
			return
		}
		if _, err := os.Stat("/usr/share/java/zookeeper.jar"); err != nil {
			zk.skip = "/usr/share/java/zookeeper.jar is missing (zookeeperd; scripts/setup installs it): no ZooKeeper for cluster tests"
			return
		}
		dir, err := os.MkdirTemp("", "rill-go-zk-")
		if err != nil {
			zk.err = err
			return
		}
		zk.dir = dir
		cmd := exec.Command("../../scripts/zk-server", "start", dir)
		var stderr strings.Builder
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		var ee *exec.ExitError
		if errors.As(err, &ee) && ee.ExitCode() == 77 {
			zk.skip = "scripts/zk-server: " + strings.TrimSpace(stderr.String())
			return
		}
		if err != nil {
			zk.err = fmt.Errorf("scripts/zk-server start: %v: %s", err, stderr.String())
			return
		}
		zk.port = strings.TrimSpace(string(out))
	})
	if zk.skip != "" {
		t.Skip(zk.skip)
	}
	if zk.err != nil {
		t.Fatal(zk.err)
	}
	return "127.0.0.1:" + zk.port
}

// watcher reads a Membership channel until it is closed, keeping every view.
type watcher struct {
	mu    sync.Mutex
	views []View
	done  chan struct{}
}

func watch(ch <-chan View) *watcher {
	wa := &watcher{done: make(chan struct{})}
	go func() {
		defer close(wa.done)
		for v := range ch {
			wa.mu.Lock()
			wa.views = append(wa.views, v)
			wa.mu.Unlock()
		}
	}()
	return wa
}

// waitView waits until the latest view received satisfies ok, and returns it.
func (wa *watcher) waitView(t *testing.T, d time.Duration, what string, ok func(View) bool) View {
	t.Helper()
	var v View
	waitUntil(t, d, what, func() bool {
		wa.mu.Lock()
		defer wa.mu.Unlock()
		if len(wa.views) == 0 {
			return false
		}
		v = wa.views[len(wa.views)-1]
		return ok(v)
	})
	return v
}

// waitClosed waits until the channel being watched has been closed.
func (wa *watcher) waitClosed(t *testing.T, d time.Duration, what string) {
	t.Helper()
	select {
	case <-wa.done:
	case <-time.After(d):
		t.Fatalf("%s: the Membership channel is still open after %v", what, d)
	}
}

func memberIDs(v View) string {
	ids := make([]string, len(v.Members))
	for i, m := range v.Members {
		ids[i] = m.ID
	}
	return strings.Join(ids, ",")
}

// Two Go workers join one cluster: both channels deliver the same two-member view, the
// workers agree on every key's owner, and when one closes its channel ends and the other
// sees a one-member view; Close leaves no goroutine behind.
func TestMembershipTwoWorkers(t *testing.T) {
	hosts := zkHosts(t)
	base := runtime.NumGoroutine()
	root := fmt.Sprintf("/rill-go-two-%d-%d", os.Getpid(), time.Now().UnixNano())
	const password = "s3cret-pw"
	cfg := func(id string) Config {
		// a joins first and sets the cluster's key groups; b asks for more and uses a's
		groups := map[string]int{"a": 256, "b": 512}[id]
		return Config{Cluster: ClusterConfig{ZKHosts: hosts, Root: root, WorkerID: id,
			PeerAddr: "127.0.0.1:0", SessionTimeout: 4 * time.Second, KeyGroups: groups,
			Auth: Secret("gotest:" + password)}}
	}
	if s := fmt.Sprintf("%v %+v %#v %s %q %x", cfg("a"), cfg("a"), cfg("a"),
		cfg("a").Cluster.Auth, cfg("a").Cluster.Auth, cfg("a").Cluster.Auth); strings.Contains(s, password) ||
		strings.Contains(s, fmt.Sprintf("%x", password)) || !strings.Contains(s, "[redacted]") {
		t.Fatalf("the password shows in fmt output: %s", s)
	}
	if b, _ := json.Marshal(cfg("a").Cluster); strings.Contains(string(b), password) {
		t.Fatalf("the password shows in JSON: %s", b)
	}

	w1, err := NewWorker(cfg("a"))
	if err != nil {
		t.Fatal(err)
	}
	defer w1.Close()
	w2, err := NewWorker(cfg("b"))
	if err != nil {
		t.Fatal(err)
	}
	defer w2.Close()
	ch1, ch2 := w1.Membership(), w2.Membership()
	if w1.Membership() != ch1 || w2.Membership() != ch2 {
		t.Fatal("Membership returned a different channel on a later call")
	}
	wa1, wa2 := watch(ch1), watch(ch2)
	if err := w1.Start(); err != nil {
		t.Fatal(err)
	}
	// a has joined (so it set the cluster's key groups) before b starts
	wa1.waitView(t, 10*time.Second, "worker a: a view with itself", func(v View) bool {
		return v.Self >= 0
	})
	if err := w2.Start(); err != nil {
		t.Fatal(err)
	}

	two := func(v View) bool { return len(v.Members) == 2 }
	v1 := wa1.waitView(t, 10*time.Second, "worker a: a view with 2 members", two)
	v2 := wa2.waitView(t, 10*time.Second, "worker b: a view with 2 members", two)
	if v1.Epoch != v2.Epoch || memberIDs(v1) != "a,b" || memberIDs(v2) != "a,b" {
		t.Fatalf("views differ: a has epoch %d [%s], b has epoch %d [%s]",
			v1.Epoch, memberIDs(v1), v2.Epoch, memberIDs(v2))
	}
	if v1.KeyGroups != 256 || v2.KeyGroups != 256 {
		t.Fatalf("KeyGroups: a=%d b=%d, want the first member's 256 on both", v1.KeyGroups,
			v2.KeyGroups)
	}
	if v1.Self != 0 || v2.Self != 1 {
		t.Fatalf("Self: a=%d b=%d, want 0 and 1", v1.Self, v2.Self)
	}
	for i, m := range v1.Members {
		if m.Addr == "" || m.Addr != v2.Members[i].Addr || strings.HasSuffix(m.Addr, ":0") {
			t.Fatalf("member %d: addr %q on a, %q on b", i, m.Addr, v2.Members[i].Addr)
		}
		// No source listener: no source address is published for GOAWAYs to name.
		if m.Source != "" || v2.Members[i].Source != "" {
			t.Fatalf("member %d: source %q on a, %q on b, want none", i, m.Source,
				v2.Members[i].Source)
		}
	}
	if v, ok := w1.View(); !ok || v.Epoch != v1.Epoch || memberIDs(v) != "a,b" || v.Self != 0 {
		t.Fatalf("View() = %+v, %v; want the channel's %+v", v, ok, v1)
	}
	if st, err := w2.Stats(); err != nil || st.ViewChanges == 0 {
		t.Fatalf("Stats: %+v, %v; want ViewChanges > 0", st, err)
	}

	// Owner agrees across the workers, and both members own keys.
	var owned [2]int
	for i := uint64(0); i < 5000; i++ {
		key := i * 0x9e3779b97f4a7c15
		o1, e1 := w1.Owner(key)
		o2, e2 := w2.Owner(key)
		if e1 != v1.Epoch || e2 != v1.Epoch {
			t.Fatalf("key %#x: epochs %d and %d, want %d", key, e1, e2, v1.Epoch)
		}
		if o1 != o2 || o1 < 0 || o1 > 1 {
			t.Fatalf("key %#x: owner %d on a, %d on b", key, o1, o2)
		}
		owned[o1]++
	}
	if owned[0] < 1500 || owned[1] < 1500 {
		t.Fatalf("5000 keys split %d/%d between the members", owned[0], owned[1])
	}

	// b leaves: its channel (being read) ends, a sees a one-member view.
	if err := w2.Close(); err != nil {
		t.Fatal(err)
	}
	wa2.waitClosed(t, 3*time.Second, "worker b after Close")
	v := wa1.waitView(t, 10*time.Second, "worker a: a view without b",
		func(v View) bool { return len(v.Members) == 1 })
	if memberIDs(v) != "a" || v.Self != 0 || v.Epoch <= v1.Epoch {
		t.Fatalf("after b left: %+v (epoch before %d)", v, v1.Epoch)
	}
	if o, e := w1.Owner(12345); o != 0 || e != v.Epoch {
		t.Fatalf("Owner after b left: %d at epoch %d", o, e)
	}
	if o, e := w2.Owner(1); o != -1 || e != 0 {
		t.Fatalf("Owner on a closed worker: %d, %d", o, e)
	}
	if _, ok := w2.View(); ok {
		t.Fatal("View on a closed worker returned a view")
	}
	if ch := w2.Membership(); ch != ch2 {
		t.Fatal("Membership after Close returned another channel")
	}

	if err := w1.Close(); err != nil {
		t.Fatal(err)
	}
	wa1.waitClosed(t, 3*time.Second, "worker a after Close")
	waitUntil(t, 5*time.Second, "goroutines to settle", func() bool {
		return runtime.NumGoroutine() <= base
	})
}

// Membership's goroutine ends with a Shutdown (before Close), and Close then frees the
// worker while nothing is waiting in C any more; a reader that went away does not block
// the feeder (the channel keeps only the latest view).
func TestMembershipShutdownAndSlowReader(t *testing.T) {
	hosts := zkHosts(t)
	base := runtime.NumGoroutine()
	root := fmt.Sprintf("/rill-go-one-%d-%d", os.Getpid(), time.Now().UnixNano())
	w, err := NewWorker(Config{Cluster: ClusterConfig{ZKHosts: hosts, Root: root,
		PeerAddr: "127.0.0.1:0", SessionTimeout: 2 * time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	ch := w.Membership() // nobody reads it until the worker is shut down
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 10*time.Second, "a view", func() bool { _, ok := w.View(); return ok })
	cur, _ := w.View()
	if len(cur.Members) != 1 || cur.Self != 0 || !strings.HasPrefix(cur.Members[0].ID, "w-") {
		t.Fatalf("view %+v: want one generated member, this worker", cur)
	}
	waitUntil(t, 3*time.Second, "the view in the channel", func() bool { return len(ch) == 1 })
	w.Shutdown()
	var got []View
	deadline := time.After(3 * time.Second)
	for open := true; open; {
		select {
		case v, ok := <-ch:
			if ok {
				got = append(got, v)
			}
			open = ok
		case <-deadline:
			t.Fatal("the Membership channel is still open 3 s after Shutdown")
		}
	}
	// the channel kept the latest view only (the one the reader missed, or a later one
	// if the stop itself changed the view before the feeder noticed it)
	if len(got) != 1 || got[0].Epoch < cur.Epoch {
		t.Fatalf("views after Shutdown: %+v, want one, of epoch %d or later", got, cur.Epoch)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 5*time.Second, "goroutines to settle", func() bool {
		return runtime.NumGoroutine() <= base
	})
}

// Without ZooKeeper: cluster settings are checked, the auth never shows in errors, and
// a worker that is not clustered has no view and a closed Membership channel.
func TestClusterConfigAndUnclustered(t *testing.T) {
	const pw = "hunter2hunter2"
	bad := []struct {
		cl   ClusterConfig
		want error
	}{
		{ClusterConfig{Root: "/x"}, ErrInvalid},
		{ClusterConfig{ZKHosts: "127.0.0.1:1", Root: "/x"}, ErrInvalid}, // no PeerAddr
		{ClusterConfig{ZKHosts: "127.0.0.1:1", Root: "x", PeerAddr: "127.0.0.1:0"}, ErrInvalid},
		{ClusterConfig{ZKHosts: "127.0.0.1:1", Root: "/x", PeerAddr: "127.0.0.1:0",
			WorkerID: "bad id"}, ErrInvalid},
		{ClusterConfig{ZKHosts: "127.0.0.1:1", Root: "/x", PeerAddr: "nope"}, ErrAddr},
		{ClusterConfig{ZKHosts: "127.0.0.1:1", Root: "/x", PeerAddr: "127.0.0.1:0",
			SessionTimeout: 500 * time.Millisecond}, ErrRange},
		{ClusterConfig{ZKHosts: "127.0.0.1:1", Root: "/x", PeerAddr: "127.0.0.1:0",
			Auth: pw}, ErrInvalid}, // no ':'
		{ClusterConfig{ZKHosts: "127.0.0.1:1", Root: "/x", PeerAddr: "127.0.0.1:0",
			PeerAdvertise: "nope"}, ErrAddr},
		{ClusterConfig{ZKHosts: "127.0.0.1:1", Root: "/x", PeerAddr: "127.0.0.1:0",
			SourceAdvertise: "nope"}, ErrAddr},
		{ClusterConfig{Root: "/x", SourceAdvertise: "127.0.0.1:1"}, ErrInvalid}, // no ZKHosts
	}
	for i, b := range bad {
		w, err := NewWorker(Config{Cluster: b.cl})
		if err == nil {
			w.Close()
			t.Fatalf("case %d: NewWorker accepted %+v", i, b.cl)
		}
		if !errors.Is(err, b.want) || strings.Contains(err.Error(), pw) {
			t.Fatalf("case %d: error %q, want %v (and no password)", i, err, b.want)
		}
	}

	w := mustWorker(t, Config{})
	if _, ok := w.View(); ok {
		t.Fatal("View on a worker that is not clustered")
	}
	if o, e := w.Owner(7); o != -1 || e != 0 {
		t.Fatalf("Owner = %d, %d on a worker that is not clustered", o, e)
	}
	if _, ok := <-w.Membership(); ok {
		t.Fatal("Membership delivered a view for a worker that is not clustered")
	}

	// Clustered but never started: no view, the channel stays open until Close.
	cw, err := NewWorker(Config{Cluster: ClusterConfig{ZKHosts: "127.0.0.1:1", Root: "/x",
		PeerAddr: "127.0.0.1:0", Auth: "u:" + pw}})
	if err != nil {
		t.Fatal(err)
	}
	ch := cw.Membership()
	select {
	case v := <-ch:
		t.Fatalf("a view before the worker joined: %+v", v)
	case <-time.After(100 * time.Millisecond):
	}
	if err := cw.Close(); err != nil {
		t.Fatal(err)
	}
	if _, ok := <-ch; ok {
		t.Fatal("the Membership channel delivered a view after Close")
	}
	if err := cw.Close(); !errors.Is(err, ErrClosed) {
		t.Fatalf("second Close: %v", err)
	}
}
