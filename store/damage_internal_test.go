package store

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// fullStore writes a store with a record of every kind, and enough traces
// for branch pages, and returns its path.
func fullStore(t *testing.T, dir string) string { return fullStoreTB(t, dir, 2000) }

func fullStoreTB(t testing.TB, dir string, traces int) string {
	t.Helper()
	path := filepath.Join(dir, "full.db")
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1700000000, 0).UTC()
	err = s.Update(func(tx *Tx) error {
		for _, f := range []func() error{
			func() error {
				return tx.PutExecutor(&Executor{ID: "ex-1", Key: "m/c/o", Owner: "token:fleet", RegisteredAt: now})
			},
			func() error {
				return tx.PutModel(&Model{Name: "m", Manifest: json.RawMessage(`{"name":"m"}`), Accuracy: json.RawMessage(`{}`), UpdatedAt: now})
			},
			func() error {
				return tx.PutKey(&Key{Key: "m/c/o", Model: "m", Objective: json.RawMessage(`{}`), CreatedAt: now})
			},
			func() error { return tx.PutState(&State{Key: "m/c/o", Kind: "dyno", Data: []byte{1, 2, 3}}) },
			func() error { return tx.PutPin(&Pin{Key: "m/c/o", Split: 1, Bits: 8, At: now}) },
			func() error { return tx.PutPolicy(&Policy{Key: "m/c/o", Version: 1, Data: []byte("policy")}) },
			func() error { return tx.AppendEvent(&Event{At: now, By: "ops", Action: "pin", Key: "m/c/o"}) },
			func() error { return tx.PutWindow("ex-1", &Window{Through: 2000}) },
			func() error { return tx.PutReportCount("ex-1", 2000) },
			func() error { return tx.PutReplayFrom(1) },
		} {
			if err := f(); err != nil {
				return err
			}
		}
		for i := 0; i < traces; i += 10 {
			var enc [][]byte
			for j := i; j < i+10; j++ {
				tr := Trace{Executor: "ex-1", Key: "m/c/o", ReportSeq: uint64(j + 1), Split: 1, Bits: 8, Propensity: 0.5, Bytes: 100, RequestID: fmt.Sprintf("r%d", j)}
				enc = append(enc, tr.AppendEncoded(nil))
			}
			if _, err := tx.AppendTraces(enc); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

func sum(t testing.TB, path string) [32]byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return sha256.Sum256(b)
}

// boltEdit changes a file through bbolt directly (as damage would).
func boltEdit(t *testing.T, path string, fn func(tx *bolt.Tx) error) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{NoFreelistSync: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(fn); err != nil {
		t.Fatal(err)
	}
	db.Close()
}

func writeAt(t *testing.T, path string, off int64, b []byte) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
	f.Close()
}

// TestEveryDamagedFileIsRefusedUnchanged builds each kind of damaged file,
// opens it, and checks that it is refused with the error of its kind,
// without a panic, and left byte for byte as it was.
func TestEveryDamagedFileIsRefusedUnchanged(t *testing.T) {
	base := fullStore(t, t.TempDir())
	pages, err := verifyFile(mustOpen(t, base), false)
	if err != nil {
		t.Fatalf("the sound store fails the walk: %v", err)
	}
	m, _ := readMeta(mustOpen(t, base), 0, 0)
	ps := int64(m.pageSize)
	m1, _ := readMeta(mustOpen(t, base), ps, int(ps))
	hwm := max(m.pgid, m1.pgid)
	used := int64(hwm) * ps
	type kind struct {
		name   string
		damage func(t *testing.T, path string)
		want   error
	}
	truncate := func(n int64) func(t *testing.T, path string) {
		return func(t *testing.T, path string) {
			if err := os.Truncate(path, n); err != nil {
				t.Fatal(err)
			}
		}
	}
	kinds := []kind{
		{"empty (0 bytes)", truncate(0), ErrEmpty},
		{"truncated to 100 bytes", truncate(100), ErrCorrupt},
		{"truncated to one page", truncate(ps), ErrCorrupt},
		{"truncated to two pages", truncate(2 * ps), ErrCorrupt},
		{"truncated to half the pages in use", truncate(used / 2), ErrCorrupt},
		{"truncated by one page", truncate(used - ps), ErrCorrupt},
		{"truncated by one byte", truncate(used - 1), ErrCorrupt},
		{"meta page 0 zeroed", func(t *testing.T, p string) { writeAt(t, p, 0, make([]byte, ps)) }, ErrCorrupt},
		{"meta page 1 zeroed", func(t *testing.T, p string) { writeAt(t, p, ps, make([]byte, ps)) }, ErrCorrupt},
		{"both meta pages zeroed", func(t *testing.T, p string) { writeAt(t, p, 0, make([]byte, 2*ps)) }, ErrNotStore},
		{"meta page 0 checksum flipped", func(t *testing.T, p string) { writeAt(t, p, 16+60, []byte{0x5a}) }, ErrCorrupt},
		{"meta page 1 root flipped", func(t *testing.T, p string) { writeAt(t, p, ps+16+16, []byte{0x5a}) }, ErrCorrupt},
		{"a text file", func(t *testing.T, p string) { os.WriteFile(p, bytes.Repeat([]byte("not a store\n"), 4000), 0o600) }, ErrNotStore},
		{"random bytes", func(t *testing.T, p string) {
			b := make([]byte, 64<<10)
			for i := range b {
				b[i] = byte(i*7919 + i/13)
			}
			os.WriteFile(p, b, 0o600)
		}, ErrNotStore},
		{"a foreign bbolt file", func(t *testing.T, p string) {
			os.Remove(p)
			boltEdit(t, p, func(tx *bolt.Tx) error {
				b, err := tx.CreateBucket([]byte("users"))
				if err != nil {
					return err
				}
				return b.Put([]byte("alice"), []byte("x"))
			})
		}, ErrNotStore},
		{"a bbolt file with no bucket", func(t *testing.T, p string) {
			os.Remove(p)
			boltEdit(t, p, func(tx *bolt.Tx) error { return nil })
		}, ErrEmpty},
		{"newer schema", func(t *testing.T, p string) {
			boltEdit(t, p, func(tx *bolt.Tx) error { return putSchema(tx.Bucket(bucketMeta), SchemaVersion+1) })
		}, ErrSchemaTooNew},
		{"foreign magic", func(t *testing.T, p string) {
			boltEdit(t, p, func(tx *bolt.Tx) error { return tx.Bucket(bucketMeta).Put(metaMagic, []byte("etcd")) })
		}, ErrNotStore},
	}
	for _, id := range pages {
		off := int64(id) * ps
		kinds = append(kinds,
			kind{fmt.Sprintf("page %d zeroed", id), func(t *testing.T, p string) { writeAt(t, p, off, make([]byte, ps)) }, ErrCorrupt},
			kind{fmt.Sprintf("page %d type flipped", id), func(t *testing.T, p string) { writeAt(t, p, off+8, []byte{0x13}) }, ErrCorrupt},
			kind{fmt.Sprintf("page %d count scrambled", id), func(t *testing.T, p string) { writeAt(t, p, off+10, []byte{0xff, 0x7f}) }, ErrCorrupt},
		)
	}
	for _, b := range allBuckets {
		name := b
		kinds = append(kinds, kind{fmt.Sprintf("bucket %s missing", name), func(t *testing.T, p string) {
			boltEdit(t, p, func(tx *bolt.Tx) error { return tx.DeleteBucket(name) })
		}, map[string]error{"meta": ErrNotStore}[string(name)]})
	}
	corrupt := map[string][2]string{ // bucket: key, value
		"executors": {"ex-1", "{not json"},
		"models":    {"m", `{"name":"other"}`},
		"keys":      {"m/c/o", "[]"},
		"state":     {"m/c/o", "{"},
		"pins":      {"m/c/o", "null}"},
		"audit":     {"\x00\x00\x00\x00\x00\x00\x00\x01", "{"},
		"traces":    {"\x00\x00\x00\x00\x00\x00\x00\x01", "\x05\x01"},
		"dedup":     {"ex-1", "abc"},
		"counters":  {"ex-1", "abc"},
		"meta":      {"created", "x"},
	}
	for b, kv := range corrupt {
		b, kv := b, kv
		kinds = append(kinds, kind{fmt.Sprintf("corrupt %s record", b), func(t *testing.T, p string) {
			boltEdit(t, p, func(tx *bolt.Tx) error { return tx.Bucket([]byte(b)).Put([]byte(kv[0]), []byte(kv[1])) })
		}, ErrCorruptRecord})
	}
	kinds = append(kinds, kind{"a key's explore floor out of range", func(t *testing.T, p string) {
		boltEdit(t, p, func(tx *bolt.Tx) error {
			return tx.Bucket(bucketKeys).Put([]byte("m/c/o"), []byte(`{"key":"m/c/o","explore_floor":1.5}`))
		})
	}, ErrCorruptRecord}, kind{"a key's baseline floor negative but not off", func(t *testing.T, p string) {
		boltEdit(t, p, func(tx *bolt.Tx) error {
			return tx.Bucket(bucketKeys).Put([]byte("m/c/o"), []byte(`{"key":"m/c/o","baseline_floor":-0.5}`))
		})
	}, ErrCorruptRecord})
	kinds = append(kinds, kind{"corrupt policies record", func(t *testing.T, p string) {
		boltEdit(t, p, func(tx *bolt.Tx) error { return tx.Bucket(bucketPolicies).Put([]byte("x/y/z"), []byte("v")) })
	}, ErrCorruptRecord})

	dir := t.TempDir()
	refused := 0
	for i, k := range kinds {
		t.Run(k.name, func(t *testing.T) {
			path := filepath.Join(dir, fmt.Sprintf("%d.db", i))
			copyFile(t, base, path)
			k.damage(t, path)
			before := sum(t, path)
			var s *Store
			func() {
				defer func() {
					if r := recover(); r != nil {
						t.Fatalf("panic: %v", r)
					}
				}()
				s, err = Open(path, Options{LockTimeout: time.Second})
			}()
			if err == nil {
				s.Close()
				t.Fatal("opened")
			}
			want := k.want
			if want == nil {
				want = ErrCorrupt
			}
			if !errors.Is(err, want) {
				t.Fatalf("error %v, want %v", err, want)
			}
			if sum(t, path) != before {
				t.Fatal("the refused file was modified")
			}
			refused++
			if testing.Verbose() {
				t.Log(err)
			}
		})
	}
	t.Logf("%d kinds of damaged file refused unchanged", refused)
	// The sound one opens, and opening it changes nothing either.
	before := sum(t, base)
	s, err := Open(base, Options{})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	if sum(t, base) != before {
		t.Error("opening a sound store of the current schema wrote to it")
	}
}

func TestEmptyFileNeedsCreate(t *testing.T) {
	path := filepath.Join(t.TempDir(), "empty.db")
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(path, Options{}); !errors.Is(err, ErrEmpty) {
		t.Fatalf("0-byte file without Create: %v", err)
	}
	s, err := Open(path, Options{Create: true})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	if _, err := Open(path, Options{}); err != nil {
		t.Fatalf("reopen the created store: %v", err)
	}
}

func TestMetaFallbackIsOptIn(t *testing.T) {
	path := fullStore(t, t.TempDir())
	f := mustOpen(t, path)
	m0, _ := readMeta(f, 0, 0)
	m1, _ := readMeta(f, int64(m0.pageSize), int(m0.pageSize))
	f.Close()
	// Damage the newer meta page: bbolt alone would open the older one.
	newer := int64(0)
	if m1.txid > m0.txid {
		newer = int64(m0.pageSize)
	}
	writeAt(t, path, newer+16+60, []byte{0x5a})
	if _, err := Open(path, Options{}); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("damaged newer meta page: %v", err)
	}
	s, err := Open(path, Options{AllowMetaFallback: true})
	if err != nil {
		t.Fatalf("with AllowMetaFallback: %v", err)
	}
	s.Close()
}

func mustOpen(t *testing.T, path string) *os.File {
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

func copyFile(t *testing.T, from, to string) {
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// FuzzOpen opens arbitrary files, seeded with a sound store and damaged
// copies of it: Open must never panic or fault, and a file it refuses is
// left as it was.
func FuzzOpen(f *testing.F) {
	dir := f.TempDir()
	base := fullStoreTB(f, dir, 20)
	sound, err := os.ReadFile(base)
	if err != nil {
		f.Fatal(err)
	}
	// bbolt grows its file in steps of 16 MiB; the pages in use are
	// enough, and small inputs fuzz faster.
	fd, _ := os.Open(base)
	m0, _ := readMeta(fd, 0, 0)
	m1, _ := readMeta(fd, int64(m0.pageSize), int(m0.pageSize))
	fd.Close()
	sound = sound[:max(m0.pgid, m1.pgid)*uint64(m0.pageSize)]
	f.Add(sound)
	for _, off := range []int{0, 4096, 8192, len(sound) / 2} {
		d := append([]byte(nil), sound...)
		for i := off; i < off+64 && i < len(d); i++ {
			d[i] ^= 0xa5
		}
		f.Add(d)
	}
	f.Add(sound[:len(sound)/2])
	n := 0
	f.Fuzz(func(t *testing.T, data []byte) {
		n++
		path := filepath.Join(t.TempDir(), fmt.Sprintf("f%d.db", n))
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		before := sha256.Sum256(data)
		s, err := Open(path, Options{LockTimeout: time.Second})
		if err == nil {
			s.Close()
			return
		}
		if sum(t, path) != before {
			t.Fatalf("refused (%v) and modified", err)
		}
	})
}
