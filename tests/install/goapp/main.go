// A Go program in its own module, outside rill's tree, that imports the rill package the
// way docs/go-api.md says (go_module_test.sh builds it against an installed rill, with a
// replace directive and with a go.work file, statically and with -tags rill_dynamic): a
// worker on a loopback port runs one computation over a frame sent to it. Prints
// "app: ok VERSION" and exits 0 when the frame ran.
package main

import (
	"encoding/binary"
	"fmt"
	"net"
	"os"
	"sync/atomic"
	"time"

	"rill.dev/rill"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "app:", err)
		os.Exit(1)
	}
}

func run() error {
	w, err := rill.NewWorker(rill.Config{Listeners: []rill.Listener{{Addr: "127.0.0.1:0"}}})
	if err != nil {
		return err
	}
	defer w.Close()
	var ran atomic.Int64
	if err := w.Register(7, "count", rill.BatchFunc(func(loop int, msgs []rill.Message, em *rill.Emitter) error {
		ran.Add(int64(len(msgs)))
		return nil
	})); err != nil {
		return err
	}
	if err := w.Start(); err != nil {
		return err
	}
	port, err := w.ListenerPort(0)
	if err != nil {
		return err
	}
	c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		return err
	}
	defer c.Close()
	f := binary.BigEndian.AppendUint32(nil, 12+5) // v1: length, comp id, key, payload
	f = binary.BigEndian.AppendUint32(f, 7)
	f = binary.BigEndian.AppendUint64(f, 42)
	if _, err := c.Write(append(f, "hello"...)); err != nil {
		return err
	}
	for deadline := time.Now().Add(20 * time.Second); ran.Load() == 0; {
		if time.Now().After(deadline) {
			return fmt.Errorf("the frame did not run")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := w.Stop(); err != nil {
		return err
	}
	fmt.Println("app: ok", rill.Version())
	return nil
}
