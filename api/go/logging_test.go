package rill

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"
)

// recordHandler keeps every record it is given.
type recordHandler struct {
	mu   sync.Mutex
	recs []slog.Record
}

func (h *recordHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *recordHandler) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h *recordHandler) WithGroup(string) slog.Handler            { return h }
func (h *recordHandler) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	h.recs = append(h.recs, r.Clone())
	h.mu.Unlock()
	return nil
}

// find returns the first record whose message contains s.
func (h *recordHandler) find(s string) (slog.Record, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, r := range h.recs {
		if strings.Contains(r.Message, s) {
			return r, true
		}
	}
	return slog.Record{}, false
}

// The library's lines reach Config.Logger with their level and lib=rill: an error from
// NewWorker's goroutine (a port in use), a warning from a loop thread (a frame shorter
// than its header).
func TestLoggerReceivesLibraryLines(t *testing.T) {
	h := &recordHandler{}
	defer SetLogger(nil)
	w := mustWorker(t, Config{Logger: slog.New(h), Listeners: []Listener{{Addr: "127.0.0.1:0"}}})
	busy := fmt.Sprintf("127.0.0.1:%d", mustPort(t, w, 0))
	if _, err := NewWorker(Config{Listeners: []Listener{{Addr: busy}}}); err == nil {
		t.Fatal("a second worker bound the same port")
	}
	r, ok := h.find("cannot listen on " + busy)
	if !ok || r.Level != slog.LevelError {
		t.Fatalf("bind error: found %v, level %v", ok, r.Level)
	}
	lib := ""
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "lib" {
			lib = a.Value.String()
		}
		return true
	})
	if lib != "rill" || strings.HasPrefix(r.Message, "rill: ") {
		t.Fatalf("record %q has lib=%q", r.Message, lib)
	}

	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	c := dial(t, w, 0)
	c.Write([]byte{0, 0, 0, 3, 0, 0, 0, 1}) // length 3: below the 12 of a header
	waitUntil(t, 10*time.Second, "the short frame's warning", func() bool {
		_, ok := h.find("frame length below 12")
		return ok
	})
	if r, _ := h.find("frame length below 12"); r.Level != slog.LevelWarn {
		t.Fatalf("short frame logged at %v", r.Level)
	}
}
