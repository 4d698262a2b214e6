package rill

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The members of TestManagedStateSurvivesKill run in processes of their own (this test
// binary, run again with RILL_GO_MEMBER set), so that one can be killed with SIGKILL.

const memberComp = 3

// countState counts frames per key in managed state; a frame with payload "?" asks for
// the key's count, which goes to sink 0 as 8 bytes, big-endian.
type countState struct{}

func (countState) BatchState(loop int, msgs []Message, st State, em *Emitter) error {
	for i := range msgs {
		v := st.Value(i)
		n := binary.LittleEndian.Uint64(v)
		if d := msgs[i].Data(); len(d) == 1 && d[0] == '?' {
			var p [8]byte
			binary.BigEndian.PutUint64(p[:], n)
			em.ToSink(0, memberComp, msgs[i].Key, p[:])
			continue
		}
		binary.LittleEndian.PutUint64(v, n+1)
	}
	return nil
}

// runMember is a member process: it prints its source port, then answers each line on
// stdin with "VIEW APPLIED PROMOTED LOST PEER_IN" until it is killed.
func runMember(id string) int {
	w, err := NewWorker(Config{Threads: 2, Sinks: []string{os.Getenv("RILL_GO_SINK")},
		Listeners: []Listener{{Addr: "127.0.0.1:0"}},
		Cluster: ClusterConfig{ZKHosts: os.Getenv("RILL_GO_ZK"), Root: os.Getenv("RILL_GO_ROOT"),
			WorkerID: id, PeerAddr: "127.0.0.1:0", SessionTimeout: 3 * time.Second}})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if err := w.RegisterState(memberComp, "count", 8, countState{}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if err := w.Start(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	port, _ := w.ListenerPort(0)
	fmt.Println(port)
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		cs, _ := w.CompStats(memberComp)
		st, _ := w.Stats()
		v, ok := w.View()
		n := 0
		if ok && v.Self >= 0 {
			n = len(v.Members)
		}
		fmt.Printf("%d %d %d %d %d\n", n, cs.Msgs, st.GroupsPromoted, st.StateLostGroups, st.PeerIn)
	}
	return 0
}

type memberProc struct {
	cmd  *exec.Cmd
	in   io.WriteCloser
	out  *bufio.Scanner
	port int
}

func startMember(t *testing.T, id, zkHosts, root, sinkAddr string) *memberProc {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "RILL_GO_MEMBER="+id, "RILL_GO_ZK="+zkHosts,
		"RILL_GO_ROOT="+root, "RILL_GO_SINK="+sinkAddr)
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	outp, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	m := &memberProc{cmd: cmd, in: in, out: bufio.NewScanner(outp)}
	t.Cleanup(func() { m.kill() })
	if !m.out.Scan() {
		t.Fatalf("member %s exited before it listened", id)
	}
	if m.port, err = strconv.Atoi(strings.TrimSpace(m.out.Text())); err != nil {
		t.Fatalf("member %s: %q is not a port", id, m.out.Text())
	}
	return m
}

// status returns the member's view size, frames applied, groups promoted and lost, and
// frames received from members.
func (m *memberProc) status(t *testing.T) [5]uint64 {
	t.Helper()
	var s [5]uint64
	if _, err := io.WriteString(m.in, "?\n"); err != nil || !m.out.Scan() {
		t.Fatalf("member %d: no status (%v)", m.port, err)
	}
	f := strings.Fields(m.out.Text())
	for i := range s {
		s[i], _ = strconv.ParseUint(f[i], 10, 64)
	}
	return s
}

func (m *memberProc) kill() {
	if m.cmd.Process != nil && m.cmd.ProcessState == nil {
		m.cmd.Process.Kill() // SIGKILL
		m.cmd.Wait()
	}
}

// A Go computation with managed state in a cluster of three processes: one member is
// killed with kill -9; its key groups' standby copies on the other two take over, and
// every key's count is exact afterwards, frames sent after the kill included.
func TestManagedStateSurvivesKill(t *testing.T) {
	hosts := zkHosts(t)
	root := fmt.Sprintf("/rill-go-state-%d-%d", os.Getpid(), time.Now().UnixNano())
	s := newSink(t)
	ms := []*memberProc{startMember(t, "a", hosts, root, s.addr()),
		startMember(t, "b", hosts, root, s.addr()), startMember(t, "c", hosts, root, s.addr())}
	agree := func(live []*memberProc) {
		waitUntil(t, 60*time.Second, fmt.Sprintf("%d members agree", len(live)), func() bool {
			for _, m := range live {
				if m.status(t)[0] != uint64(len(live)) {
					return false
				}
			}
			return true
		})
	}
	applied := func(live []*memberProc) uint64 {
		var n uint64
		for _, m := range live {
			n += m.status(t)[1]
		}
		return n
	}
	// quiet waits until live applied `want` frames and no member received anything from
	// another for 300 ms: the standby copies hold what the owners did.
	quiet := func(live []*memberProc, want uint64, what string) {
		var last, since = ^uint64(0), time.Now()
		waitUntil(t, 60*time.Second, what, func() bool {
			var got, in uint64
			for _, m := range live {
				st := m.status(t)
				got += st[1]
				in += st[4]
			}
			if got != want || in != last {
				last, since = in, time.Now()
				return false
			}
			return time.Since(since) >= 300*time.Millisecond
		})
	}
	agree(ms)

	const keys = 3000
	sent := make([]uint64, keys)
	send := func(frames int, seed uint64) {
		var buf []byte
		for i := 0; i < frames; i++ {
			seed = seed*6364136223846793005 + 1442695040888963407
			k := (seed >> 33) % keys
			buf = appendFrame(buf, memberComp, k, nil)
			sent[k]++
		}
		c, err := net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(ms[0].port))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Write(buf); err != nil {
			t.Fatal(err)
		}
		c.Close()
	}
	send(30000, 1)
	quiet(ms, 30000, "30000 frames applied, the cluster quiet")

	ms[2].kill()
	live := ms[:2]
	agree(live)
	before := applied(live)
	send(10000, 2)
	quiet(live, before+10000, "10000 more frames applied")

	var ask []byte
	for k := uint64(0); k < keys; k++ {
		ask = appendFrame(ask, memberComp, k, []byte("?"))
	}
	c, err := net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(ms[0].port))
	if err != nil {
		t.Fatal(err)
	}
	c.Write(ask)
	c.Close()
	s.waitFor(t, keys, 60*time.Second)
	wrong := 0
	for _, f := range s.snapshot() {
		if f.key >= keys || len(f.data) != 8 || binary.BigEndian.Uint64(f.data) != sent[f.key] {
			wrong++
		}
	}
	var promoted, lost uint64
	for _, m := range live {
		st := m.status(t)
		promoted += st[2]
		lost += st[3]
	}
	t.Logf("after the kill: %d groups promoted, %d lost, %d of %d counts wrong", promoted, lost,
		wrong, keys)
	if wrong != 0 || s.count() != keys {
		t.Fatalf("%d counts wrong, %d answers for %d keys", wrong, s.count(), keys)
	}
	if promoted == 0 || lost != 0 {
		t.Fatalf("%d groups promoted, %d lost: want some promoted, none lost", promoted, lost)
	}
}
