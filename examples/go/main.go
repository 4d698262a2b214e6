// wordcount: a small program that embeds rill and counts words in Go.
//
// It listens for text lines (line framing: `nc` or `socat` can feed it). A stateless Go
// computation splits each line into words and sends every word, keyed by its hash, to a
// second computation whose per-word counts rill keeps (managed state: each batch comes
// with its words' values, so Go needs no map and no lock, and no cgo call per word).
// When it stops — on SIGINT/SIGTERM, or after -duration — it prints the counts. With
// -sink HOST:PORT it also emits one v1 frame per word and count ("word count") to that
// sink.
//
//	./examples/go/run                       (builds what is needed, then runs this)
//	printf 'to be or not to be\n' | nc -q1 127.0.0.1 7700
package main

import (
	"bytes"
	"encoding/binary"
	"flag"
	"fmt"
	"hash/fnv"
	"log"
	"os"
	"os/signal"
	"sort"
	"strconv"
	"syscall"
	"time"

	"rill.dev/rill"
)

const (
	splitID = 1 // lines, from the listener
	countID = 2 // words, keyed by their hash
)

// A word's value in rill's managed state: its count (8 bytes), then the word itself (its
// length, then up to maxWord bytes) so that the counts can be printed.
const (
	maxWord   = 55
	valueSize = 8 + 1 + maxWord
)

// split sends each word of each line to the counter. It keeps nothing per key, so it is
// registered stateless and runs on the loop that read the line.
var split = rill.BatchFunc(func(loop int, msgs []rill.Message, em *rill.Emitter) error {
	for i := range msgs {
		for _, w := range bytes.Fields(msgs[i].Data()) {
			w = bytes.ToLower(w)
			h := fnv.New64a()
			h.Write(w)
			if err := em.ToComp(countID, h.Sum64(), w); err != nil {
				return err
			}
		}
	}
	return nil
})

// wordCount counts the words of its batches in their values.
type wordCount struct {
	sink  bool
	final []map[string]uint64 // per loop: the counts of its last flush
}

func (c *wordCount) BatchState(loop int, msgs []rill.Message, st rill.State, em *rill.Emitter) error {
	for i := range msgs {
		v := st.Value(i)
		n := binary.LittleEndian.Uint64(v)
		if n == 0 { // a word this loop has not seen: keep its text
			v[8] = byte(copy(v[9:], msgs[i].Data()))
		}
		binary.LittleEndian.PutUint64(v, n+1)
	}
	return nil
}

// Flush runs on each loop when the worker stops (rill.Config.FlushInterval could make it
// periodic): it goes through the loop's counts, keeps them for printing and emits them
// to the sink.
func (c *wordCount) Flush(loop int, em *rill.Emitter) {
	counts := map[string]uint64{}
	em.ScanState(func(key uint64, v []byte) bool {
		word := string(v[9 : 9+int(v[8])])
		n := binary.LittleEndian.Uint64(v)
		counts[word] = n
		if c.sink {
			em.ToSink(0, countID, key, []byte(word+" "+strconv.FormatUint(n, 10)))
		}
		return true
	})
	c.final[loop] = counts
}

func main() {
	listen := flag.String("listen", "127.0.0.1:7700", "HOST:PORT for text lines (port 0: any)")
	sink := flag.String("sink", "", "optional HOST:PORT that receives the counts as v1 frames")
	threads := flag.Int("threads", 2, "loop threads")
	duration := flag.Duration("duration", 0, "stop after this long (0: on SIGINT/SIGTERM)")
	top := flag.Int("top", 20, "print the N most frequent words")
	flag.Parse()

	cfg := rill.Config{Threads: *threads,
		Listeners: []rill.Listener{{Addr: *listen, Framing: rill.FramingLine, CompID: splitID}}}
	if *sink != "" {
		cfg.Sinks = []string{*sink}
	}
	w, err := rill.NewWorker(cfg)
	if err != nil {
		log.Fatal(err)
	}
	defer w.Close()
	wc := &wordCount{sink: *sink != "", final: make([]map[string]uint64, w.Threads())}
	if err := w.RegisterStateless(splitID, "split", split); err != nil {
		log.Fatal(err)
	}
	if err := w.RegisterState(countID, "wordcount", valueSize, wc); err != nil {
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

	// The loops have exited: what their last flush kept may be read from here. A word
	// lives on one loop; words longer than maxWord bytes are shown cut.
	total := map[string]uint64{}
	for _, m := range wc.final {
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
