// wordcount: a small program that embeds rill and counts words in Go.
//
// It listens for text lines (line framing: `nc` or `socat` can feed it), sends every line
// to a Go computation that counts words with per-key state kept per loop (no locks: all
// lines of one key reach one loop), and when it stops — on SIGINT/SIGTERM, or after
// -duration — prints the counts. With -sink HOST:PORT it also emits one v1 frame per
// word and count ("word count") to that sink when it flushes.
//
//	./examples/go/run                       (builds what is needed, then runs this)
//	printf 'to be or not to be\n' | nc -q1 127.0.0.1 7700
package main

import (
	"bytes"
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"sort"
	"strconv"
	"syscall"
	"time"

	"rill.dev/rill"
)

const countID = 1

// wordCount keeps one map per loop: loop i's map is touched only by loop i's thread.
type wordCount struct {
	perLoop []map[string]uint64
	sink    bool
}

func (c *wordCount) Batch(loop int, msgs []rill.Message, em *rill.Emitter) error {
	m := c.perLoop[loop]
	for i := range msgs {
		// Data() is a view of rill's receive buffer, valid during this call only:
		// string(w) copies each word before it becomes a map key.
		for _, w := range bytes.Fields(msgs[i].Data()) {
			m[string(bytes.ToLower(w))]++
		}
	}
	return nil
}

// Flush runs on each loop when the worker stops (and every -flush interval): it emits
// this loop's counts to the sink.
func (c *wordCount) Flush(loop int, em *rill.Emitter) {
	if !c.sink {
		return
	}
	for w, n := range c.perLoop[loop] {
		em.ToSink(0, countID, uint64(loop), []byte(w+" "+strconv.FormatUint(n, 10)))
	}
}

func main() {
	listen := flag.String("listen", "127.0.0.1:7700", "HOST:PORT for text lines (port 0: any)")
	sink := flag.String("sink", "", "optional HOST:PORT that receives the counts as v1 frames")
	threads := flag.Int("threads", 2, "loop threads")
	duration := flag.Duration("duration", 0, "stop after this long (0: on SIGINT/SIGTERM)")
	top := flag.Int("top", 20, "print the N most frequent words")
	flag.Parse()

	cfg := rill.Config{Threads: *threads,
		Listeners: []rill.Listener{{Addr: *listen, Framing: rill.FramingLine, CompID: countID}}}
	if *sink != "" {
		cfg.Sinks = []string{*sink}
	}
	w, err := rill.NewWorker(cfg)
	if err != nil {
		log.Fatal(err)
	}
	defer w.Close()
	wc := &wordCount{perLoop: make([]map[string]uint64, w.Threads()), sink: *sink != ""}
	for i := range wc.perLoop {
		wc.perLoop[i] = map[string]uint64{}
	}
	if err := w.Register(countID, "wordcount", wc); err != nil {
		log.Fatal(err)
	}
	if err := w.Start(); err != nil {
		log.Fatal(err)
	}
	port, _ := w.ListenerPort(0)
	fmt.Printf("wordcount: rill %s, reading lines on port %d (Ctrl-C to stop)\n", rill.Version(), port)

	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	var timeout <-chan time.Time
	if *duration > 0 {
		timeout = time.After(*duration)
	}
	select {
	case <-sigs:
	case <-timeout:
	}
	if err := w.Stop(); err != nil { // drains: every line received is counted
		log.Fatal(err)
	}

	// The loops have exited: their maps may be read from here.
	total := map[string]uint64{}
	for _, m := range wc.perLoop {
		for k, n := range m {
			total[k] += n
		}
	}
	words := make([]string, 0, len(total))
	for k := range total {
		words = append(words, k)
	}
	sort.Slice(words, func(i, j int) bool {
		if total[words[i]] != total[words[j]] {
			return total[words[i]] > total[words[j]]
		}
		return words[i] < words[j]
	})
	st, _ := w.Stats()
	fmt.Printf("wordcount: %d lines, %d distinct words\n", st.MsgsIn, len(words))
	for i, k := range words {
		if i == *top {
			break
		}
		fmt.Printf("%8d  %s\n", total[k], k)
	}
}
