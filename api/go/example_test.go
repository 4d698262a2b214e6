package rill_test

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"time"

	"rill.dev/rill"
)

// upper is a computation: it upper-cases every message and sends it to sink 0.
type upper struct{}

func (upper) Batch(loop int, msgs []rill.Message, em *rill.Emitter) error {
	for i := range msgs {
		// Data() is a view of rill's buffer, valid during this call; ToSink copies.
		out := strings.ToUpper(string(msgs[i].Data()))
		if err := em.ToSink(0, msgs[i].CompID, msgs[i].Key, []byte(out)); err != nil {
			return err
		}
	}
	return nil
}

// A worker that reads text lines on a free port, passes each to computation 7, and sends
// the results as v1 frames to a sink that the example opens itself.
func Example() {
	sinkLn, _ := net.Listen("tcp", "127.0.0.1:0")
	defer sinkLn.Close()

	w, err := rill.NewWorker(rill.Config{
		Listeners: []rill.Listener{{Addr: "127.0.0.1:0", Framing: rill.FramingLine, CompID: 7, HasKey: true, Key: 42}},
		Sinks:     []string{sinkLn.Addr().String()},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer w.Close()
	if err := w.Register(7, "upper", upper{}); err != nil {
		fmt.Println(err)
		return
	}
	if err := w.Start(); err != nil {
		fmt.Println(err)
		return
	}

	port, _ := w.ListenerPort(0)
	src, _ := net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(port))
	defer src.Close()
	fmt.Fprintf(src, "hello, rill\n")

	conn, _ := sinkLn.Accept() // the loop's sink connection
	defer conn.Close()
	r := bufio.NewReader(conn)
	var hdr [16]byte
	io.ReadFull(r, hdr[:])
	payload := make([]byte, binary.BigEndian.Uint32(hdr[0:4])-12)
	io.ReadFull(r, payload)
	fmt.Printf("comp %d key %d: %s\n", binary.BigEndian.Uint32(hdr[4:8]),
		binary.BigEndian.Uint64(hdr[8:16]), payload)

	w.Stop()
	st, _ := w.Stats()
	fmt.Println("in:", st.MsgsIn, "out:", st.MsgsOut, "comps:", st.Comps[0].Name)
	// Output:
	// comp 7 key 42: HELLO, RILL
	// in: 1 out: 1 comps: upper
}

// Counting per key without locks: every message of a key reaches the same loop, so state
// kept per loop index is only ever touched by that loop's thread.
func Example_perKeyState() {
	w, _ := rill.NewWorker(rill.Config{Threads: 2,
		Listeners: []rill.Listener{{Addr: "127.0.0.1:0", Framing: rill.FramingLine, CompID: 1}}})
	counts := make([]map[string]int, w.Threads()) // one map per loop
	for i := range counts {
		counts[i] = map[string]int{}
	}
	done := make(chan struct{})
	w.Register(1, "count", rill.BatchFunc(func(loop int, msgs []rill.Message, em *rill.Emitter) error {
		for i := range msgs {
			counts[loop][string(msgs[i].Data())]++ // string(...) copies the key
		}
		return nil
	}))
	w.Start()
	port, _ := w.ListenerPort(0)
	src, _ := net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(port))
	fmt.Fprint(src, "a\nb\na\nc\na\n")
	src.Close()
	go func() {
		for {
			if st, _ := w.Stats(); st.MsgsDispatched == 5 {
				close(done)
				return
			}
			time.Sleep(time.Millisecond)
		}
	}()
	<-done
	w.Close() // loops have exited: reading the maps is safe now
	total := map[string]int{}
	for _, m := range counts {
		for k, n := range m {
			total[k] += n
		}
	}
	fmt.Println(total["a"], total["b"], total["c"])
	// Output: 3 1 1
}

// A clustered worker (a ZooKeeper server must be running at the address given): each
// frame is processed by the member that owns its key, and Membership reports the views
// as members join and leave. Not run by go test (it has no Output comment).
func ExampleWorker_Membership() {
	w, err := rill.NewWorker(rill.Config{
		Threads:   2,
		Listeners: []rill.Listener{{Addr: "127.0.0.1:7700", Framing: rill.FramingRill}},
		Cluster: rill.ClusterConfig{
			ZKHosts:  "127.0.0.1:2181",
			Root:     "/rill/demo",
			WorkerID: "worker-1",
			PeerAddr: "127.0.0.1:7701",
			Auth:     "demo:secret", // printed as [redacted]
		},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer w.Close()
	views := w.Membership() // before Start, so that the first view is not missed
	if err := w.Start(); err != nil {
		fmt.Println(err)
		return
	}
	go func() {
		time.Sleep(time.Minute)
		w.Shutdown() // ends the channel, and the loop below
	}()
	for v := range views { // always the latest view; intermediate ones may be skipped
		fmt.Printf("epoch %d: %d members, this worker is member %d\n", v.Epoch,
			len(v.Members), v.Self) // Self is -1 once this worker has left
		if owner, epoch := w.Owner(42); epoch == v.Epoch && owner >= 0 {
			fmt.Printf("key 42 belongs to %s\n", v.Members[owner].ID)
		}
	}
}
