package tracelog_test

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dynoml/dyno/costmodel"
	"github.com/dynoml/dyno/tracelog"
)

func record(i int) *tracelog.Record {
	acc := 1.0
	return &tracelog.Record{
		Schema: tracelog.SchemaVersion, ID: fmt.Sprintf("req-%d", i), Key: "resnet50/phone-low/min-latency", Executor: "dev-1",
		Seq: uint64(i + 1), Time: time.Date(2026, 11, 28, 12, 0, i, 0, time.UTC), Policy: "dyno", PolicyVersion: 7,
		Conditions: costmodel.Conditions{BandwidthMbps: 1.5, RTTMs: 40},
		Eligible:   []int{0, 1, 2}, ArmIndex: 1, Arm: costmodel.Arm{Split: 1, Bits: 8}, Explore: true,
		Propensity: 0.25, Probs: []float64{0.5, 0.25, 0.25},
		Observed: tracelog.Observed{DeviceMs: 10, PackMs: 0.5, Bytes: 1000, NetworkMs: 5.3, RTTMs: 40, CloudMs: 2},
		Accuracy: &acc, Cost: 57.8,
	}
}

func TestRoundTrip(t *testing.T) {
	var buf bytes.Buffer
	w := tracelog.NewWriter(&buf)
	for i := 0; i < 100; i++ {
		if err := w.Write(record(i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	r := tracelog.NewReader(&buf, tracelog.ReadOptions{})
	n := 0
	for r.Next() {
		if got, want := r.Record(), record(n); !reflect.DeepEqual(got, want) {
			t.Fatalf("record %d:\n got %+v\nwant %+v", n, got, want)
		}
		n++
	}
	if r.Err() != nil || n != 100 || r.Read() != 100 {
		t.Fatalf("read %d, err %v", n, r.Err())
	}
}

func TestBadLines(t *testing.T) {
	good := func(i int) string {
		var b bytes.Buffer
		w := tracelog.NewWriter(&b)
		if err := w.Write(record(i)); err != nil {
			t.Fatal(err)
		}
		w.Flush()
		return b.String()
	}
	cases := []struct {
		name, line, want string
	}{
		{"not json", "hello\n", "line 2"},
		{"truncated", good(1)[:40] + "\n", "line 2"},
		{"NaN propensity", strings.Replace(good(1), `"propensity":0.25`, `"propensity":0`, 1), "propensity: 0 is outside (0, 1]"},
		{"wrong schema", strings.Replace(good(1), `"schema":1`, `"schema":2`, 1), "schema: version 2"},
		{"negative bytes", strings.Replace(good(1), `"bytes":1000`, `"bytes":-1`, 1), "observed.bytes"},
		{"probs disagree", strings.Replace(good(1), `"probs":[0.5,0.25,0.25]`, `"probs":[0.5,0.4,0.1]`, 1), "propensity: 0.25 but probs[1] is 0.4"},
		{"probs do not sum", strings.Replace(good(1), `"probs":[0.5,0.25,0.25]`, `"probs":[0.9,0.25,0.25]`, 1), "probs: sums to"},
		{"no id", strings.Replace(good(1), `"id":"req-1"`, `"id":""`, 1), "id: empty"},
		{"zero bandwidth", strings.Replace(good(1), `"bandwidth_mbps":1.5`, `"bandwidth_mbps":0`, 1), "bandwidth_mbps"},
		{"too long", `{"schema":1,"id":"` + strings.Repeat("x", 5000) + `"}` + "\n", "line too long"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if !strings.Contains(tc.line, "\n") {
				t.Fatal("test line needs its newline")
			}
			src := good(0) + tc.line + good(2)
			r := tracelog.NewReader(strings.NewReader(src), tracelog.ReadOptions{MaxLine: 4096})
			n := 0
			for r.Next() {
				n++
			}
			var le *tracelog.LineError
			if !errors.As(r.Err(), &le) || le.Line != 2 || !strings.Contains(r.Err().Error(), tc.want) {
				t.Fatalf("err %v, want line 2 saying %q", r.Err(), tc.want)
			}
			if n != 1 {
				t.Errorf("read %d good records before the bad line, want 1", n)
			}
			// With SkipBad the bad line is counted and the rest is read.
			r = tracelog.NewReader(strings.NewReader(src), tracelog.ReadOptions{MaxLine: 4096, SkipBad: true})
			var ids []string
			for r.Next() {
				ids = append(ids, r.Record().ID)
			}
			if r.Err() != nil || r.Skipped() != 1 || r.FirstBad().Line != 2 || !reflect.DeepEqual(ids, []string{"req-0", "req-2"}) {
				t.Fatalf("skip-bad: ids %v, skipped %d, first %v, err %v", ids, r.Skipped(), r.FirstBad(), r.Err())
			}
		})
	}
}

func TestWriterRejectsInvalid(t *testing.T) {
	rec := record(0)
	rec.Cost = math.Inf(1)
	w := tracelog.NewWriter(&bytes.Buffer{})
	if err := w.Write(rec); err == nil || !errors.Is(err, tracelog.ErrInvalid) {
		t.Fatalf("infinite cost written: %v", err)
	}
}

func FuzzReader(f *testing.F) {
	var b bytes.Buffer
	w := tracelog.NewWriter(&b)
	for i := 0; i < 3; i++ {
		w.Write(record(i))
	}
	w.Flush()
	f.Add(b.Bytes())
	f.Add([]byte("{}\n\n{\"schema\":1}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		r := tracelog.NewReader(bytes.NewReader(data), tracelog.ReadOptions{SkipBad: true, MaxLine: 512})
		for r.Next() {
			if err := r.Record().Validate(); err != nil {
				t.Fatalf("reader returned an invalid record: %v", err)
			}
		}
	})
}

func TestEligibleMask(t *testing.T) {
	arms := []int{0, 1, 3, 8, 126}
	r := tracelog.Record{EligibleMask: tracelog.EligibleSet(arms)}
	got, err := r.EligibleArms()
	if err != nil || !slices.Equal(got, arms) {
		t.Fatalf("mask %q reads back as %v (%v), want %v", r.EligibleMask, got, err, arms)
	}
	r.EligibleMask = "zz"
	if _, err := r.EligibleArms(); !errors.Is(err, tracelog.ErrInvalid) {
		t.Fatalf("bad mask: %v, want ErrInvalid", err)
	}
}
