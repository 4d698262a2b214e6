package rill

import (
	"os"
	"reflect"
	"regexp"
	"strings"
	"testing"
)

// counterTable is the file that lists the worker's counters once (C generates its
// per-loop counters, sums, /metrics and stats line from it).
const counterTable = "../../core/stats/counters.h"

// goField finds a C counter name to its Stats field: CamelCase of the snake_case name,
// compared case-insensitively so initialisms stay idiomatic (enobufs -> ENOBUFS,
// zk_errors -> ZKErrors).
func goField(t reflect.Type, cName string) (reflect.StructField, bool) {
	want := strings.ReplaceAll(cName, "_", "")
	return t.FieldByNameFunc(func(n string) bool { return strings.EqualFold(n, want) })
}

// camel is name in CamelCase (msgs_in -> MsgsIn), for messages.
func camel(name string) string {
	var b strings.Builder
	for _, p := range strings.Split(name, "_") {
		if p != "" {
			b.WriteString(strings.ToUpper(p[:1]) + p[1:])
		}
	}
	return b.String()
}

// tableCounters returns the counter names of core/stats/counters.h, in table order.
func tableCounters(t *testing.T) []string {
	t.Helper()
	src, err := os.ReadFile(counterTable)
	if err != nil {
		t.Fatalf("the counter table: %v", err)
	}
	rows := regexp.MustCompile(`(?m)^\s*X\((\w+),\s*(COUNTER|GAUGE),\s*(LOOPS|CLUSTER|REGISTRY),`).
		FindAllSubmatch(src, -1)
	var names []string
	for _, r := range rows {
		names = append(names, string(r[1]))
	}
	if len(names) < 30 {
		t.Fatalf("%s: found %d counter rows; the table's format changed?", counterTable, len(names))
	}
	return names
}

// TestStatsHasEveryCounter fails when Go's Stats lacks a counter of C's rill_stats_t or of
// the counter table, when Stats has a counter C does not, or when Stats() does not copy a
// field from the C snapshot into the Stats field of the same name.
func TestStatsHasEveryCounter(t *testing.T) {
	cFields, got := statsProbe()
	table := tableCounters(t)

	// rill_stats_t (as cgo sees the installed header) and the table list the same
	// counters in the same order (C checks this at compile time too).
	var cNames []string
	for _, f := range cFields {
		if f.Type.Kind() != reflect.Uint64 {
			t.Errorf("rill_stats_t.%s is %v, not a uint64", f.Name, f.Type)
		}
		cNames = append(cNames, f.Name)
	}
	if !reflect.DeepEqual(cNames, table) {
		t.Errorf("rill_stats_t fields and %s rows differ:\n  C:     %v\n  table: %v",
			counterTable, cNames, table)
	}

	st := reflect.TypeOf(Stats{})
	v := reflect.ValueOf(got)
	matched := map[string]bool{}
	for i, name := range cNames {
		f, ok := goField(st, name)
		if !ok {
			t.Errorf("Stats has no field for C counter %s (want Stats.%s uint64)", name, camel(name))
			continue
		}
		matched[f.Name] = true
		if f.Type.Kind() != reflect.Uint64 {
			t.Errorf("Stats.%s is %v, want uint64", f.Name, f.Type)
			continue
		}
		if g := v.FieldByIndex(f.Index).Uint(); g != uint64(i+1) {
			t.Errorf("Stats.%s = %d, want %d: statsFromC does not copy rill_stats_t.%s", f.Name,
				g, i+1, name)
		}
	}
	for i := 0; i < st.NumField(); i++ {
		f := st.Field(i)
		if f.Type.Kind() == reflect.Uint64 && !matched[f.Name] {
			t.Errorf("Stats.%s matches no counter of rill_stats_t", f.Name)
		}
	}
}
