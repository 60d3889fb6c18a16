package store

import (
	"os"
	"path/filepath"
	"testing"

	bolt "go.etcd.io/bbolt"
)

// BenchmarkOpen opens a store of 500,000 traces: the page walk, bbolt's
// check and the decoding of every record (Open), the walk alone
// (SkipCheck), and bbolt's check alone (the baseline). go test -run '^$' -bench Open -benchtime 3x ./store/
func BenchmarkOpen(b *testing.B) {
	path := filepath.Join(b.TempDir(), "big.db")
	s, err := Open(path, Options{NoSync: true})
	if err != nil {
		b.Fatal(err)
	}
	for blk := 0; blk < 5000; blk++ {
		err := s.Update(func(tx *Tx) error {
			enc := make([][]byte, 100)
			for i := range enc {
				tr := Trace{Executor: "ex-1", Key: "mobilenetv2/phone-low/default", ReportSeq: uint64(blk*100 + i + 1), Split: 3, Bits: 8, Propensity: 0.2,
					Bytes: 5000, RequestID: "r", Conditions: TraceConditions{BandwidthMbps: 10, RTTMs: 40}, Stages: TraceStages{DeviceMs: 5, NetworkMs: 3, CloudMs: 2}}
				enc[i] = tr.AppendEncoded(nil)
			}
			_, err := tx.AppendTraces(enc)
			return err
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	s.Close()
	fi, _ := os.Stat(path)
	// The baseline: what Open did before, bbolt's check alone.
	b.Run("bbolt-check", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			db, err := bolt.Open(path, 0o400, &bolt.Options{ReadOnly: true})
			if err != nil {
				b.Fatal(err)
			}
			db.View(func(tx *bolt.Tx) error {
				for err := range tx.Check() {
					b.Fatal(err)
				}
				return nil
			})
			db.Close()
		}
	})
	for _, c := range []struct {
		name string
		opts Options
	}{{"full", Options{}}, {"walk-only", Options{SkipCheck: true}}} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			b.ReportMetric(float64(fi.Size())/(1<<20), "MiB")
			for i := 0; i < b.N; i++ {
				s, err := Open(path, c.opts)
				if err != nil {
					b.Fatal(err)
				}
				s.Close()
			}
		})
	}
}
