package store_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/dynoml/dyno/store"
)

// open opens a store in a temporary folder and closes it at the end.
func open(t testing.TB) (*store.Store, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "dyno.db")
	s, err := store.Open(path, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, path
}

func sampleTrace(i int) store.Trace {
	return store.Trace{
		ReceivedUnixNano: int64(1_700_000_000_000_000_000 + i), Executor: "ex-1", Key: "resnet50/phone-low/default",
		ReportSeq: uint64(i + 1), RequestID: "r", StartUnixNano: -5, Split: 3, Bits: 8, Explore: i%2 == 0,
		Propensity: 0.25, PolicyVersion: 7,
		Conditions: store.TraceConditions{BandwidthMbps: 10, RTTMs: 40, CloudSlowdown: 1.5},
		Stages:     store.TraceStages{DeviceMs: 12.5, PackMs: 0.1, NetworkMs: 3, RTTMs: 40, CloudMs: 4, LatencyMs: 60},
		Bytes:      1234, Accuracy: 1, HasAccuracy: true, Eligible: []byte{0xff, 0x01},
		PolicyKind: "dyno", Cost: 61.5, Probs: []float64{0.25, 0.75}, AllowedBits: []int{32, 16, 8},
	}
}

func TestReopenRestoresEverything(t *testing.T) {
	s, path := open(t)
	exec := store.Executor{ID: "ex-1", Key: "k", Model: "m", DeviceClass: "d", Labels: map[string]string{"site": "a"}, RegisteredAt: time.Unix(10, 0).UTC(), LastSeen: time.Unix(20, 0).UTC(), Reports: 3}
	mod := store.Model{Name: "m", Manifest: json.RawMessage(`{"a":1}`), Accuracy: json.RawMessage(`{"b":2}`), Profiles: map[string]json.RawMessage{"d": json.RawMessage(`{"c":3}`)}, UpdatedAt: time.Unix(30, 0).UTC()}
	key := store.Key{Key: "k", Model: "m", DeviceClass: "d", CloudClass: "c", ObjectiveName: "default", Objective: json.RawMessage(`{"kind":"min-latency"}`), CreatedAt: time.Unix(40, 0).UTC(), ExploreFloor: 0.1, BaselineFloor: -1}
	st := store.State{Key: "k", Kind: "thompson", Data: []byte{1, 2, 3}, AppliedSeq: 2, Reports: 2, TotalReports: 5, Version: 9}
	pin := store.Pin{Key: "k", Split: 1, Bits: 8, Until: time.Unix(50, 0).UTC(), By: "ops", At: time.Unix(45, 0).UTC()}
	win := store.Window{Through: 7, Above: []uint64{9, 12}}
	var seqs []uint64
	err := s.Update(func(tx *store.Tx) error {
		for _, f := range []func() error{
			func() error { return tx.PutExecutor(&exec) },
			func() error { return tx.PutModel(&mod) },
			func() error { return tx.PutKey(&key) },
			func() error { return tx.PutState(&st) },
			func() error { return tx.PutPin(&pin) },
			func() error { return tx.PutWindow("ex-1", &win) },
			func() error { return tx.PutReplayFrom(2) },
			func() error {
				return tx.AppendEvent(&store.Event{At: time.Unix(45, 0).UTC(), By: "ops", Action: "pin", Key: "k", Version: 9})
			},
		} {
			if err := f(); err != nil {
				return err
			}
		}
		for v := uint64(1); v <= 20; v++ {
			if err := tx.PutPolicy(&store.Policy{Key: "k", Version: v, Data: []byte{byte(v)}}); err != nil {
				return err
			}
		}
		for i := 0; i < 3; i++ {
			tr := sampleTrace(i)
			seq, err := tx.AppendTrace(tr.AppendEncoded(nil))
			if err != nil {
				return err
			}
			seqs = append(seqs, seq)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(seqs, []uint64{1, 2, 3}) {
		t.Fatalf("trace seqs %v, want 1 2 3", seqs)
	}
	s.Close()
	s, err = store.Open(path, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	err = s.View(func(tx *store.Tx) error {
		if tx.Schema() != store.SchemaVersion {
			t.Errorf("schema %d", tx.Schema())
		}
		if e, ok, err := tx.Executor("ex-1"); err != nil || !ok || !reflect.DeepEqual(e, exec) {
			t.Errorf("executor %+v %v %v", e, ok, err)
		}
		if m, ok, err := tx.Model("m"); err != nil || !ok || !reflect.DeepEqual(m, mod) {
			t.Errorf("model %+v %v %v", m, ok, err)
		}
		if k, ok, err := tx.Key("k"); err != nil || !ok || !reflect.DeepEqual(k, key) {
			t.Errorf("key %+v %v %v", k, ok, err)
		}
		if got, ok, err := tx.State("k"); err != nil || !ok || !reflect.DeepEqual(got, st) {
			t.Errorf("state %+v %v %v", got, ok, err)
		}
		if p, ok, err := tx.Pin("k"); err != nil || !ok || !reflect.DeepEqual(p, pin) {
			t.Errorf("pin %+v %v %v", p, ok, err)
		}
		if w, err := tx.Window("ex-1"); err != nil || !reflect.DeepEqual(w, win) {
			t.Errorf("window %+v %v", w, err)
		}
		if tx.ReplayFrom() != 2 {
			t.Errorf("replay from %d", tx.ReplayFrom())
		}
		if p, ok := tx.LatestPolicy("k"); !ok || p.Version != 20 || !bytes.Equal(p.Data, []byte{20}) {
			t.Errorf("latest policy %+v %v", p, ok)
		}
		if _, ok := tx.PolicyVersion("k", 20-store.PoliciesKept); ok {
			t.Errorf("version %d still kept", 20-store.PoliciesKept)
		}
		if _, ok := tx.PolicyVersion("k", 20-store.PoliciesKept+1); !ok {
			t.Errorf("version %d not kept", 20-store.PoliciesKept+1)
		}
		var events []store.Event
		tx.ForEachEvent(0, func(e store.Event) error { events = append(events, e); return nil })
		if len(events) != 1 || events[0].By != "ops" || events[0].Seq != 1 {
			t.Errorf("events %+v", events)
		}
		if r := tx.Traces(); r != (store.TraceRange{First: 1, Last: 3, Count: 3, NextSeq: 4}) {
			t.Errorf("trace range %+v", r)
		}
		i := 0
		return tx.ForEachTrace(2, func(tr store.Trace) (bool, error) {
			want := sampleTrace(i + 1)
			want.Seq = uint64(i + 2)
			if !reflect.DeepEqual(tr, want) {
				t.Errorf("trace %d:\n got %+v\nwant %+v", tr.Seq, tr, want)
			}
			i++
			return true, nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
}

func digest(t *testing.T, path string) [32]byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return sha256.Sum256(b)
}

func TestOpenRefusesAndNeverWrites(t *testing.T) {
	cases := []struct {
		name string
		make func(t *testing.T, path string)
		want error
	}{
		{"text file", func(t *testing.T, path string) {
			os.WriteFile(path, bytes.Repeat([]byte("not a database\n"), 1000), 0o600)
		}, store.ErrNotStore},
		{"foreign bbolt file", func(t *testing.T, path string) {
			db, err := bolt.Open(path, 0o600, nil)
			if err != nil {
				t.Fatal(err)
			}
			db.Update(func(tx *bolt.Tx) error { _, err := tx.CreateBucket([]byte("other")); return err })
			db.Close()
		}, store.ErrNotStore},
		{"newer schema", func(t *testing.T, path string) {
			s, err := store.Open(path, store.Options{})
			if err != nil {
				t.Fatal(err)
			}
			s.Close()
			db, err := bolt.Open(path, 0o600, nil)
			if err != nil {
				t.Fatal(err)
			}
			db.Update(func(tx *bolt.Tx) error {
				return tx.Bucket([]byte("meta")).Put([]byte("schema"), []byte{0, 0, 0, store.SchemaVersion + 1})
			})
			db.Close()
		}, store.ErrSchemaTooNew},
		{"corrupt meta pages", func(t *testing.T, path string) {
			s, err := store.Open(path, store.Options{})
			if err != nil {
				t.Fatal(err)
			}
			s.Close()
			f, _ := os.OpenFile(path, os.O_RDWR, 0)
			// Damage both meta pages' checksummed bodies, keep the magic.
			for _, off := range []int64{0, 4096} {
				f.WriteAt(bytes.Repeat([]byte{0xAB}, 24), off+40)
			}
			f.Close()
		}, store.ErrCorrupt},
		{"corrupt data page", func(t *testing.T, path string) {
			s, err := store.Open(path, store.Options{})
			if err != nil {
				t.Fatal(err)
			}
			s.Update(func(tx *store.Tx) error {
				for i := 0; i < 2000; i++ {
					tr := sampleTrace(i)
					if _, err := tx.AppendTrace(tr.AppendEncoded(nil)); err != nil {
						return err
					}
				}
				return nil
			})
			used := s.Size()
			s.Close()
			f, _ := os.OpenFile(path, os.O_RDWR, 0)
			// Scribble over the page headers of the second half of the pages in use.
			for off := used / 2 / 4096 * 4096; off < used; off += 4096 {
				f.WriteAt(bytes.Repeat([]byte{0xFF}, 16), off)
			}
			f.Close()
		}, store.ErrCorrupt},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "file.db")
			tc.make(t, path)
			before := digest(t, path)
			s, err := store.Open(path, store.Options{})
			if err == nil {
				s.Close()
				t.Fatal("opened")
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("error %v, want %v", err, tc.want)
			}
			if digest(t, path) != before {
				t.Fatal("the refused file was modified")
			}
			t.Log(err)
		})
	}
}

func TestSecondOpenIsLocked(t *testing.T) {
	_, path := open(t)
	_, err := store.Open(path, store.Options{LockTimeout: 50 * time.Millisecond})
	if !errors.Is(err, store.ErrLocked) {
		t.Fatalf("second open: %v, want ErrLocked", err)
	}
}

func TestRetention(t *testing.T) {
	s, _ := open(t)
	base := time.Unix(1_700_000_000, 0)
	err := s.Update(func(tx *store.Tx) error {
		for i := 0; i < 100; i++ {
			tr := sampleTrace(i)
			tr.ReceivedUnixNano = base.Add(time.Duration(i) * time.Second).UnixNano()
			if _, err := tx.AppendTrace(tr.AppendEncoded(nil)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name      string
		r         store.Retention
		limit     int
		wantFirst uint64
	}{
		{"count", store.Retention{MaxCount: 90}, 1000, 11},
		{"count limited per call", store.Retention{MaxCount: 50}, 5, 16},
		{"age", store.Retention{MaxAge: 30 * time.Second}, 1000, 70},
		{"nothing to do", store.Retention{MaxCount: 1000, MaxAge: time.Hour}, 1000, 70},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := s.Update(func(tx *store.Tx) error {
				_, err := tx.PruneTraces(tc.r, base.Add(99*time.Second), tc.limit)
				return err
			})
			if err != nil {
				t.Fatal(err)
			}
			s.View(func(tx *store.Tx) error {
				if r := tx.Traces(); r.First != tc.wantFirst || r.Last != 100 || r.NextSeq != 101 {
					t.Errorf("range %+v, want first %d", r, tc.wantFirst)
				}
				return nil
			})
		})
	}
}

func TestBackupWhileWriting(t *testing.T) {
	s, _ := open(t)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			s.Update(func(tx *store.Tx) error {
				tr := sampleTrace(i)
				_, err := tx.AppendTrace(tr.AppendEncoded(nil))
				if err != nil {
					return err
				}
				return tx.PutState(&store.State{Key: "k", AppliedSeq: uint64(i + 1)})
			})
		}
	}()
	time.Sleep(50 * time.Millisecond)
	copyPath := filepath.Join(t.TempDir(), "copy.db")
	f, err := os.Create(copyPath)
	if err != nil {
		t.Fatal(err)
	}
	n, err := s.Backup(f, nil)
	f.Close()
	close(stop)
	wg.Wait()
	if err != nil || n == 0 {
		t.Fatalf("backup: %d bytes, %v", n, err)
	}
	c, err := store.Open(copyPath, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.View(func(tx *store.Tx) error {
		st, _, _ := tx.State("k")
		r := tx.Traces()
		// The copy is one snapshot: the state names the last trace.
		if r.Last == 0 || st.AppliedSeq != r.Last {
			t.Errorf("inconsistent copy: state at %d, traces up to %d", st.AppliedSeq, r.Last)
		}
		return nil
	})
}

func TestWindow(t *testing.T) {
	cases := []struct {
		name        string
		add         []uint64
		wantThrough uint64
		wantAbove   []uint64
		wantNew     int
	}{
		{"in order", []uint64{1, 2, 3}, 3, nil, 3},
		{"resent", []uint64{1, 2, 2, 1, 3}, 3, nil, 3},
		{"gap filled", []uint64{1, 3, 4, 2}, 4, nil, 4},
		{"gap open", []uint64{1, 3, 5}, 1, []uint64{3, 5}, 3},
		{"duplicate above", []uint64{5, 5}, 0, []uint64{5}, 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var w store.Window
			n := 0
			for _, s := range tc.add {
				if w.Add(s) {
					n++
				}
				if !w.Seen(s) {
					t.Fatalf("%d not seen after Add", s)
				}
			}
			if w.Through != tc.wantThrough || !reflect.DeepEqual(w.Above, tc.wantAbove) && len(w.Above)+len(tc.wantAbove) > 0 || n != tc.wantNew {
				t.Fatalf("window %+v, %d new; want through %d above %v, %d new", w, n, tc.wantThrough, tc.wantAbove, tc.wantNew)
			}
		})
	}
	t.Run("gives up on a lost number", func(t *testing.T) {
		var w store.Window
		for s := uint64(2); s <= store.MaxAbove+2; s++ {
			w.Add(s)
		}
		if w.Through != store.MaxAbove+2 || len(w.Above) != 0 {
			t.Fatalf("through %d, %d above", w.Through, len(w.Above))
		}
	})
}

func FuzzDecodeTrace(f *testing.F) {
	for i := 0; i < 4; i++ {
		tr := sampleTrace(i)
		f.Add(tr.AppendEncoded(nil))
	}
	f.Add([]byte{1})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		tr, err := store.DecodeTrace(1, b)
		if err != nil {
			return
		}
		// What decodes re-encodes to a fixed point: decoding the
		// re-encoding and encoding again changes nothing (NaNs included,
		// which DeepEqual would not compare).
		again := tr.AppendEncoded(nil)
		tr2, err := store.DecodeTrace(1, again)
		if err != nil {
			t.Fatalf("re-encoding does not decode: %v", err)
		}
		if third := tr2.AppendEncoded(nil); !bytes.Equal(again, third) {
			t.Fatalf("re-encoding is not stable: %x vs %x", again, third)
		}
	})
}

func TestTraceBlocks(t *testing.T) {
	s, _ := open(t)
	// Blocks of 3, 1 and 4 traces: seqs 1-3, 4, 5-8.
	err := s.Update(func(tx *store.Tx) error {
		i := 0
		for _, n := range []int{3, 1, 4} {
			var enc [][]byte
			for j := 0; j < n; j++ {
				tr := sampleTrace(i)
				enc = append(enc, tr.AppendEncoded(nil))
				i++
			}
			first, err := tx.AppendTraces(enc)
			if err != nil {
				return err
			}
			if want := uint64(i - n + 1); first != want {
				t.Errorf("block starts at %d, want %d", first, want)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for from := uint64(0); from <= 9; from++ {
		var got []uint64
		s.View(func(tx *store.Tx) error {
			return tx.ForEachTrace(from, func(tr store.Trace) (bool, error) {
				if tr.ReportSeq != tr.Seq {
					t.Errorf("trace %d holds report %d", tr.Seq, tr.ReportSeq)
				}
				got = append(got, tr.Seq)
				return true, nil
			})
		})
		want := 8 - int(max(from, 1)) + 1
		if len(got) != max(want, 0) || (len(got) > 0 && got[0] != max(from, 1)) {
			t.Errorf("from %d: %v", from, got)
		}
	}
	s.View(func(tx *store.Tx) error {
		if r := tx.Traces(); r != (store.TraceRange{First: 1, Last: 8, Count: 8, NextSeq: 9}) {
			t.Errorf("range %+v", r)
		}
		return nil
	})
	// Retention deletes whole blocks: at most 5 kept means the first block
	// (3) goes, the second (1) would leave 4 < 5 and stays.
	s.Update(func(tx *store.Tx) error {
		n, err := tx.PruneTraces(store.Retention{MaxCount: 5}, time.Now(), 100)
		if n != 3 {
			t.Errorf("pruned %d", n)
		}
		return err
	})
	s.View(func(tx *store.Tx) error {
		if r := tx.Traces(); r.First != 4 || r.Last != 8 || r.Count != 5 {
			t.Errorf("range after retention %+v", r)
		}
		return nil
	})
}

// TestPutKeyRefusesFloorsOutOfRange: a key record whose floors no operator
// could set is not written.
func TestPutKeyRefusesFloorsOutOfRange(t *testing.T) {
	s, _ := open(t)
	for _, k := range []store.Key{{Key: "k", ExploreFloor: 1}, {Key: "k", ExploreFloor: math.NaN()}, {Key: "k", BaselineFloor: -0.2}} {
		err := s.Update(func(tx *store.Tx) error { return tx.PutKey(&k) })
		if !errors.Is(err, store.ErrInvalid) {
			t.Errorf("PutKey %+v: %v, want ErrInvalid", k, err)
		}
	}
	if err := s.View(func(tx *store.Tx) error {
		if _, ok, err := tx.Key("k"); ok || err != nil {
			t.Errorf("a refused key was written: %v %v", ok, err)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

// TestTraceAllowedBits: a trace keeps the allowed bits it was logged with;
// one logged without them (as records written before they were kept) reads
// back without them, and a damaged tail is refused.
func TestTraceAllowedBits(t *testing.T) {
	tr := sampleTrace(0)
	got, err := store.DecodeTrace(1, tr.AppendEncoded(nil))
	if err != nil || !reflect.DeepEqual(got.AllowedBits, []int{32, 16, 8}) {
		t.Fatalf("allowed bits %v (%v), want 32 16 8", got.AllowedBits, err)
	}
	tr.AllowedBits = nil
	enc := tr.AppendEncoded(nil)
	got, err = store.DecodeTrace(1, enc)
	if err != nil || got.AllowedBits != nil {
		t.Fatalf("a trace without allowed bits reads %v (%v)", got.AllowedBits, err)
	}
	for name, tail := range map[string][]byte{"empty list": {0}, "too many": {17}, "zero bits": {1, 0}, "65 bits": {1, 65}, "truncated": {2, 8}} {
		if _, err := store.DecodeTrace(1, append(append([]byte{}, enc...), tail...)); !errors.Is(err, store.ErrCorruptRecord) {
			t.Errorf("tail %s: %v, want ErrCorruptRecord", name, err)
		}
	}
}
