package rill

import (
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// waitStats polls the worker's stats until ok says yes, failing after a generous bound.
func waitStats(t *testing.T, w *Worker, what string, ok func(Stats) bool) Stats {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		st, err := w.Stats()
		if err != nil {
			t.Fatal(err)
		}
		if ok(st) {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not reached within 30 s (stats %+v)", what, st)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Config's connection limits and metrics endpoint reach the C worker: a third
// connection beyond MaxConns 2 is refused, a connection stalled inside a frame is closed
// after IdleTimeout, and /metrics answers on MetricsPort with those counters.
func TestLimitsAndMetrics(t *testing.T) {
	for _, bad := range []Config{{MaxConns: -1}, {CarryBudget: -1}, {CarryBudget: 1000}, {SourceCredit: 100}, {SourceCreditPool: 100}, {SourceCreditPool: 1 << 40}, {BusyWait: -1}, {BusyWait: 11 * time.Millisecond}} {
		if _, err := NewWorker(bad); !errors.Is(err, ErrRange) {
			t.Fatalf("%+v: %v, want ErrRange", bad, err)
		}
	}
	if _, err := NewWorker(Config{MetricsAddr: "nonsense"}); !errors.Is(err, ErrAddr) {
		t.Fatalf("bad metrics address: %v", err)
	}
	if w, err := NewWorker(Config{IdleTimeout: -1, SourceCreditPool: -1}); err != nil { // never, no pool
		t.Fatalf("IdleTimeout -1, SourceCreditPool -1: %v", err)
	} else {
		if _, err := w.MetricsPort(); !errors.Is(err, ErrInvalid) {
			t.Fatalf("MetricsPort without MetricsAddr: %v", err)
		}
		w.Close()
	}

	w := mustWorker(t, Config{MaxConns: 2, IdleTimeout: 100 * time.Millisecond,
		CarryBudget: 1 << 20, MetricsAddr: "127.0.0.1:0", BusyWait: 50 * time.Microsecond,
		Listeners: []Listener{{Addr: "127.0.0.1:0"}}})
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	a, b := dial(t, w, 0), dial(t, w, 0)
	waitStats(t, w, "two connections open", func(s Stats) bool { return s.ConnsOpen == 2 })
	dial(t, w, 0)
	st := waitStats(t, w, "the third refused", func(s Stats) bool { return s.ConnsRefused >= 1 })
	if st.ConnsOpen != 2 {
		t.Fatalf("open %d, want 2", st.ConnsOpen)
	}
	// Half a frame header, then nothing: closed as idle.
	if _, err := a.Write([]byte{0, 0}); err != nil {
		t.Fatal(err)
	}
	waitStats(t, w, "the stalled connection closed", func(s Stats) bool { return s.ErrIdle >= 1 })
	b.Close()

	port, err := w.MetricsPort()
	if err != nil || port <= 0 {
		t.Fatalf("MetricsPort: %d, %v", port, err)
	}
	resp, err := http.Get("http://127.0.0.1:" + strconv.Itoa(port) + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{"rill_conns_refused_total 1", `rill_protocol_errors_total{reason="idle"} 1`, "rill_carry_bytes"} {
		if !strings.Contains(string(body), want) {
			t.Fatalf("/metrics lacks %q:\n%s", want, body)
		}
	}

	// Readiness: the worker runs (its loops may still be setting up right after Start),
	// and /readyz says the same; after Stop it is not ready, and /healthz still answers.
	deadline := time.Now().Add(30 * time.Second)
	for ok, _ := w.Ready(); !ok && time.Now().Before(deadline); ok, _ = w.Ready() {
		time.Sleep(5 * time.Millisecond)
	}
	get := func(path string) (int, string) {
		resp, err := http.Get("http://127.0.0.1:" + strconv.Itoa(port) + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, text := get("/readyz"); code != 200 || text != "ready\n" {
		t.Fatalf("/readyz while running: %d %q", code, text)
	}
	if err := w.Stop(); err != nil {
		t.Fatal(err)
	}
	if ok, why := w.Ready(); ok || why != "stopping" {
		t.Fatalf("Ready after Stop: %v %q", ok, why)
	}
	if code, text := get("/readyz"); code != 503 || text != "not ready: stopping\n" {
		t.Fatalf("/readyz after Stop: %d %q", code, text)
	}
	if code, _ := get("/healthz"); code != 200 {
		t.Fatalf("/healthz after Stop: %d", code)
	}
}
