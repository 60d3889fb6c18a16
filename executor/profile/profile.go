// Package profile measures a split model on the machine it runs on: the
// latency of every block through ONNX Runtime (a costmodel.Profile), and
// the accuracy of every arm (split, bits) when the activation at the split
// goes through the executor's packing (a costmodel.AccuracyTable), scored
// by a metric that fits the output (metric.go) on the user's own labelled
// data (data.go: .npy inputs and a labels file). These are the inputs of
// DynO's cost model; `dyno-executor profile` and `dyno-executor calibrate`
// write them.
//
// It measures; it does not predict (costmodel) or decide (bandit).
package profile

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"os"
	"runtime"
	"slices"
	"time"

	"github.com/dynoml/dyno/costmodel"
	"github.com/dynoml/dyno/executor/ort"
	"github.com/dynoml/dyno/executor/packing"
	"github.com/dynoml/dyno/model"
)

// ErrConfig is wrapped by invalid configurations.
var ErrConfig = errors.New("profile: invalid configuration")

// Config is what Profile measures and how. Zero values take the defaults
// documented per field.
type Config struct {
	// Model is model.json or the folder holding it.
	Model string
	// Role is the side the profile describes; default device.
	Role costmodel.Role
	// DeviceClass labels the machine class; default DefaultClass().
	DeviceClass string
	// Host is the machine's name; default os.Hostname().
	Host string
	// Warmup runs per block before timing; default 3.
	Warmup int
	// Runs timed per block; default 20.
	Runs int
	// Threads is ONNX Runtime's intra-op thread count; 0 is its default.
	Threads int
	// Provider is the ONNX Runtime execution provider; default the CPU.
	Provider ort.Provider
	// Seed draws the random input; default 1.
	Seed uint64
	// PackBits is the precision at which packing (device) or unpacking
	// (cloud) is timed for PackNsPerElement; default 8.
	PackBits int
	// Progress receives progress reports per block; nil reports nothing.
	Progress io.Writer
	// Slowdown, above 1, times the blocks the way a device executor
	// emulating a device Slowdown times slower runs them: each run goes
	// through the whole chain in order, timing every block where it
	// falls, and is followed by an idle (Slowdown-1) times as long as the
	// run, as the emulated device stage waits. Blocks run this way after
	// an idle take longer than repeated alone (caches and the core have
	// gone cold), and the emulation stretches what they take. 0 or 1:
	// each block is repeated alone, back to back.
	Slowdown float64
}

// DefaultClass is the device class label of an unnamed machine:
// "<GOARCH>-<cores>cpu", e.g. "amd64-2cpu".
func DefaultClass() string { return fmt.Sprintf("%s-%dcpu", runtime.GOARCH, runtime.NumCPU()) }

func (c Config) withDefaults() (Config, error) {
	if c.Model == "" {
		return c, fmt.Errorf("%w: no model", ErrConfig)
	}
	if c.Role == "" {
		c.Role = costmodel.RoleDevice
	}
	if c.Role != costmodel.RoleDevice && c.Role != costmodel.RoleCloud {
		return c, fmt.Errorf("%w: role %q is neither %q nor %q", ErrConfig, c.Role, costmodel.RoleDevice, costmodel.RoleCloud)
	}
	if c.DeviceClass == "" {
		c.DeviceClass = DefaultClass()
	}
	if c.Host == "" {
		h, err := os.Hostname()
		if err != nil {
			h = "unknown"
		}
		c.Host = h
	}
	if c.Warmup == 0 {
		c.Warmup = 3
	}
	if c.Runs == 0 {
		c.Runs = 20
	}
	if c.Seed == 0 {
		c.Seed = 1
	}
	if c.PackBits == 0 {
		c.PackBits = 8
	}
	if c.Provider == "" {
		c.Provider = ort.ProviderCPU
	}
	if c.Warmup < 0 || c.Runs < 1 || c.Threads < 0 {
		return c, fmt.Errorf("%w: warmup %d, runs %d, threads %d: runs must be positive, the others not negative", ErrConfig, c.Warmup, c.Runs, c.Threads)
	}
	if c.Slowdown != 0 && !(c.Slowdown >= 1) || math.IsInf(c.Slowdown, 0) {
		return c, fmt.Errorf("%w: slowdown %g: want 0 or a finite factor of at least 1", ErrConfig, c.Slowdown)
	}
	if !model.IsValidBits(c.PackBits) {
		return c, fmt.Errorf("%w: pack bits %d is not one of %v", ErrConfig, c.PackBits, model.ValidBits)
	}
	return c, nil
}

// Profile times every block of the model: warm-up runs, then timed runs on
// the activation a random input produces at the block's input (so each
// block sees realistic values), reporting the median and 95th percentile.
// The blocks' sessions are created once and run one at a time.
func Profile(ctx context.Context, cfg Config, log *slog.Logger) (*costmodel.Profile, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	chain, err := ort.OpenChain(cfg.Model, ort.Options{Threads: cfg.Threads, Provider: cfg.Provider})
	if err != nil {
		return nil, err
	}
	defer chain.Close()
	m := chain.Manifest
	acts, err := activations(chain, randomInput(int(m.Input.Elements), cfg.Seed))
	if err != nil {
		return nil, err
	}
	p := &costmodel.Profile{
		Version:     costmodel.ProfileVersion,
		Model:       m.Name,
		DeviceClass: cfg.DeviceClass,
		Role:        cfg.Role,
		Host:        cfg.Host,
		Provider:    string(cfg.Provider),
	}
	v, _ := ort.Version()
	p.Source = fmt.Sprintf("dyno-executor profile: ONNX Runtime %s on %s, %s threads, %d warm-up + %d timed runs per block, %s", v, providerLabel(cfg.Provider), threadsLabel(cfg.Threads), cfg.Warmup, cfg.Runs, time.Now().UTC().Format(time.RFC3339))
	if cfg.Slowdown > 1 {
		p.Source += fmt.Sprintf(", blocks timed in chain order with an idle of %g times each run between runs (device slowdown %g)", cfg.Slowdown-1, cfg.Slowdown)
		p.Blocks, err = timeInChain(ctx, chain, acts, cfg, log)
	} else {
		p.Blocks, err = timeAlone(ctx, chain, acts, cfg, log)
	}
	if err != nil {
		return nil, err
	}
	ns, err := packNs(ctx, m, acts, cfg)
	if err != nil {
		return nil, err
	}
	p.PackNsPerElement = ns
	if err := p.Validate(m.K()); err != nil {
		return nil, err
	}
	return p, nil
}

// timeAlone repeats every block alone, back to back.
func timeAlone(ctx context.Context, chain *ort.Chain, acts [][]float32, cfg Config, log *slog.Logger) ([]costmodel.BlockTiming, error) {
	m := chain.Manifest
	var out []float32
	var blocks []costmodel.BlockTiming
	prog := newProgress(cfg.Progress, "profile "+m.Name+" blocks", chain.K())
	for i := 1; i <= chain.K(); i++ {
		s := chain.Block(i)
		times := make([]float64, 0, cfg.Runs)
		for r := 0; r < cfg.Warmup+cfg.Runs; r++ {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			t0 := time.Now()
			var err error
			out, err = s.Run(out, acts[i-1])
			if err != nil {
				return nil, fmt.Errorf("profile %s: block %d: %w", m.Name, i, err)
			}
			if r >= cfg.Warmup {
				times = append(times, float64(time.Since(t0).Nanoseconds())/1e6)
			}
		}
		blocks = append(blocks, blockTiming(m, i, times, cfg.Runs, log))
		prog.step(i)
	}
	return blocks, nil
}

// timeInChain runs the whole chain in order, timing every block where it
// falls, then idles (Slowdown-1) times the run.
func timeInChain(ctx context.Context, chain *ort.Chain, acts [][]float32, cfg Config, log *slog.Logger) ([]costmodel.BlockTiming, error) {
	m, k := chain.Manifest, chain.K()
	times := make([][]float64, k)
	outs := make([][]float32, k)
	prog := newProgress(cfg.Progress, "profile "+m.Name+" runs", cfg.Warmup+cfg.Runs)
	for r := 0; r < cfg.Warmup+cfg.Runs; r++ {
		start := time.Now()
		cur := acts[0]
		for i := 1; i <= k; i++ {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			t0 := time.Now()
			out, err := chain.Block(i).Run(outs[i-1], cur)
			if err != nil {
				return nil, fmt.Errorf("profile %s: block %d: %w", m.Name, i, err)
			}
			if r >= cfg.Warmup {
				times[i-1] = append(times[i-1], float64(time.Since(t0).Nanoseconds())/1e6)
			}
			outs[i-1], cur = out, out
		}
		idle := time.NewTimer(time.Duration(float64(time.Since(start)) * (cfg.Slowdown - 1)))
		select {
		case <-ctx.Done():
			idle.Stop()
			return nil, ctx.Err()
		case <-idle.C:
		}
		prog.step(r + 1)
	}
	blocks := make([]costmodel.BlockTiming, 0, k)
	for i := 1; i <= k; i++ {
		blocks = append(blocks, blockTiming(m, i, times[i-1], cfg.Runs, log))
	}
	return blocks, nil
}

func blockTiming(m *model.Manifest, i int, times []float64, runs int, log *slog.Logger) costmodel.BlockTiming {
	bt := costmodel.BlockTiming{MedianMs: Percentile(times, 50), P95Ms: Percentile(times, 95), Runs: runs}
	log.Debug("profile: block timed", "model", m.Name, "block", i, "name", m.Blocks[i-1].Name, "median_ms", round3(bt.MedianMs), "p95_ms", round3(bt.P95Ms))
	return bt
}

func threadsLabel(n int) string {
	if n == 0 {
		return "default"
	}
	return fmt.Sprint(n)
}

func round3(v float64) float64 { return math.Round(v*1000) / 1000 }

// packNs times packing (device role) or unpacking (cloud role) of the
// largest activation sent across an interior split, per element.
func packNs(ctx context.Context, m *model.Manifest, acts [][]float32, cfg Config) (float64, error) {
	s := 0
	for i := 1; i < m.K(); i++ {
		if len(acts[i]) > len(acts[s]) {
			s = i
		}
	}
	x := acts[s]
	shape := m.Input.Shape
	if s > 0 {
		shape = m.Blocks[s-1].Output.Shape
	}
	opt := packing.Options{Bits: cfg.PackBits}
	msg, err := packing.Encode(nil, x, shape, opt)
	if err != nil {
		return 0, fmt.Errorf("profile %s: pack split %d at %d bits: %w", m.Name, s, cfg.PackBits, err)
	}
	var dst []float32
	runs := max(5, min(cfg.Runs, 50))
	times := make([]float64, 0, runs)
	for r := 0; r < runs+2; r++ {
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		t0 := time.Now()
		if cfg.Role == costmodel.RoleDevice {
			msg, err = packing.Encode(msg[:0], x, shape, opt)
		} else {
			dst, _, err = packing.Decode(dst, msg, packing.DecodeOptions{})
		}
		if err != nil {
			return 0, fmt.Errorf("profile %s: packing split %d: %w", m.Name, s, err)
		}
		if r >= 2 {
			times = append(times, float64(time.Since(t0).Nanoseconds()))
		}
	}
	return Percentile(times, 50) / float64(len(x)), nil
}

// activations runs the whole chain on x and returns the tensor crossing
// every split: acts[0] is x, acts[s] the output of block s.
func activations(c *ort.Chain, x []float32) ([][]float32, error) {
	acts := [][]float32{x}
	for s := 1; s <= c.K(); s++ {
		y, err := c.Block(s).Run(nil, acts[s-1])
		if err != nil {
			return nil, fmt.Errorf("%s: block %d: %w", c.Manifest.Name, s, err)
		}
		acts = append(acts, y)
	}
	return acts, nil
}

// randomInput is n standard normal values from seed.
func randomInput(n int, seed uint64) []float32 {
	r := rand.New(rand.NewPCG(seed, 0x70726f66)) // "prof"
	x := make([]float32, n)
	for i := range x {
		x[i] = float32(r.NormFloat64())
	}
	return x
}

// Percentile returns the p-th percentile (0 < p <= 100) of v by linear
// interpolation between closest ranks; v is not modified. 50 is the median.
func Percentile(v []float64, p float64) float64 {
	if len(v) == 0 {
		return math.NaN()
	}
	s := slices.Clone(v)
	slices.Sort(s)
	pos := p / 100 * float64(len(s)-1)
	lo := int(math.Floor(pos))
	hi := min(lo+1, len(s)-1)
	return s[lo] + (s[hi]-s[lo])*(pos-float64(lo))
}

func providerLabel(p ort.Provider) string {
	switch p {
	case ort.ProviderCUDA:
		return "CUDA"
	case ort.ProviderTensorRT:
		return "TensorRT"
	}
	return "CPU"
}
