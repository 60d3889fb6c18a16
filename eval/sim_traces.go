package eval

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/dynoml/dyno/tracelog"
)

// runSeedTraced runs one seed, writing its trace records when
// Options.Traces is set.
func (w *World) runSeedTraced(opt Options, seedIndex, n int) (*seedRun, error) {
	if opt.Traces == "" {
		return w.runSeed(opt.Policies, seedIndex, n, &Tuning{Dyno: opt.Dyno}, nil)
	}
	if err := os.MkdirAll(opt.Traces, 0o755); err != nil {
		return nil, err
	}
	files := make([]*os.File, len(opt.Policies))
	writers := make([]*tracelog.Writer, len(opt.Policies))
	closeAll := func() {
		for _, f := range files {
			if f != nil {
				f.Close()
			}
		}
	}
	for i, p := range opt.Policies {
		path := filepath.Join(opt.Traces, fmt.Sprintf("%s-%s-seed%d.jsonl", w.Scenario.Name, p, seedIndex))
		f, err := os.Create(path)
		if err != nil {
			closeAll()
			return nil, err
		}
		files[i], writers[i] = f, tracelog.NewWriter(f)
	}
	run, err := w.runSeed(opt.Policies, seedIndex, n, &Tuning{Dyno: opt.Dyno}, func(p int, rec *tracelog.Record, _ []float64) error {
		return writers[p].Write(rec)
	})
	if err != nil {
		closeAll()
		return nil, err
	}
	for i, wr := range writers {
		if err := wr.Flush(); err != nil {
			closeAll()
			return nil, err
		}
		if err := files[i].Close(); err != nil {
			return nil, err
		}
		files[i] = nil
	}
	return run, nil
}
