package store

import (
	"os"
	"path/filepath"
	"testing"
)

// BenchmarkOpen opens a store of 500,000 traces: the page walk, bbolt's
// check and the decoding of every record (Open), and the walk alone
// (SkipCheck). go test -run '^$' -bench Open -benchtime 3x ./store/
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
