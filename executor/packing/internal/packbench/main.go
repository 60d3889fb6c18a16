// Command packbench measures executor/packing on this machine: encode and
// decode throughput at every width against copy() of the same buffer, wire
// size on ReLU-like activations, and the worst round-trip error, and checks
// the package's targets. `make bench` runs it.
//
// Every operation is timed in batches, one batch per operation per round over
// several interleaved rounds, and reported as the median: by the thread's
// CPU time (the targets are judged on it) and by wall time. CPU time leaves
// out the time the thread waited for a core, which on a machine shared with
// other builds is most of the spread.
package main

import (
	"flag"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"runtime"
	"slices"
	"time"

	"github.com/dynoml/dyno/executor/packing"
	"github.com/dynoml/dyno/internal/cputime"
)

func main() {
	n := flag.Int("n", 1<<20, "elements per tensor")
	rounds := flag.Int("rounds", 9, "interleaved timing rounds")
	minBatch := flag.Duration("batch", 25*time.Millisecond, "minimum duration of one batch")
	strict := flag.Bool("strict", false, "exit with status 1 when a target is missed")
	flag.Parse()
	if !run(*n, *rounds, *minBatch) && *strict {
		os.Exit(1)
	}
}

type config struct {
	name string
	opt  packing.Options
}

func configs() []config {
	var cs []config
	add := func(o packing.Options) {
		cs = append(cs, config{opt: o})
	}
	for _, b := range []int{32, 16, 8, 6, 4, 3, 2} {
		add(packing.Options{Bits: b})
	}
	for _, b := range []int{8, 4} {
		add(packing.Options{Bits: b, Scheme: packing.SchemeAffineChannel})
		add(packing.Options{Bits: b, ClipPercentile: 99.9})
		add(packing.Options{Bits: b, Scheme: packing.SchemeAffineChannel, ClipPercentile: 99.9})
	}
	for _, b := range []int{16, 8, 4, 2} {
		add(packing.Options{Bits: b, Compression: packing.CompressionZstd})
	}
	return cs
}

// reluLike is half exact zeros, the rest drawn by pos (exponential or
// half-normal), as after a ReLU.
func reluLike(n int, seed uint64, pos func(*rand.Rand) float64) []float32 {
	r := rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15))
	x := make([]float32, n)
	for i := range x {
		if r.IntN(2) == 1 {
			x[i] = float32(pos(r))
		}
	}
	return x
}

func exponential(r *rand.Rand) float64 { return r.ExpFloat64() }
func halfNormal(r *rand.Rand) float64  { return math.Abs(r.NormFloat64()) }

// bench is one timed operation. Benches are run in interleaved rounds, one
// batch each per round, so that load from other processes on the machine
// spreads over all of them instead of spoiling one.
type bench struct {
	f         func()
	iters     int
	wall, cpu []time.Duration // per call, one per round
}

func newBench(f func(), minBatch time.Duration) *bench {
	f() // warm up: page in buffers, fill pools
	b := &bench{f: f, iters: 1}
	for {
		start := time.Now()
		for range b.iters {
			f()
		}
		if time.Since(start) >= minBatch || b.iters > 1<<24 {
			return b
		}
		b.iters *= 2
	}
}

func (b *bench) round() {
	c0, cok := cputime.Thread()
	start := time.Now()
	for range b.iters {
		b.f()
	}
	wall := time.Since(start)
	c1, _ := cputime.Thread()
	b.wall = append(b.wall, wall/time.Duration(b.iters))
	if cok {
		b.cpu = append(b.cpu, time.Duration(c1-c0)/time.Duration(b.iters))
	}
}

func median(d []time.Duration) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	return s[len(s)/2]
}

func gbps(bytes int, d time.Duration) float64 {
	if d <= 0 {
		return math.NaN()
	}
	return float64(bytes) / d.Seconds() / 1e9
}

type result struct {
	enc, dec *bench
	wire     int
	maxErr   float64
}

func prepare(data []float32, shape []int64, opt packing.Options, minBatch time.Duration) (*result, error) {
	msg, err := packing.Encode(nil, data, shape, opt)
	if err != nil {
		return nil, err
	}
	out, _, err := packing.Decode(nil, msg, packing.DecodeOptions{})
	if err != nil {
		return nil, err
	}
	r := &result{wire: len(msg)}
	for i, x := range data {
		if e := math.Abs(float64(out[i]) - float64(x)); e > r.maxErr || e != e {
			r.maxErr = e
		}
	}
	buf := make([]byte, 0, 2*len(msg)+4096)
	r.enc = newBench(func() { buf, _ = packing.Encode(buf[:0], data, shape, opt) }, minBatch)
	r.dec = newBench(func() { out, _, _ = packing.Decode(out, msg, packing.DecodeOptions{}) }, minBatch)
	return r, nil
}

func run(n, rounds int, minBatch time.Duration) bool {
	runtime.LockOSThread() // so the thread's CPU time is the benchmark's
	start := time.Now()
	c := n / (64 * 64)
	if c < 1 || n%(64*64) != 0 {
		fmt.Fprintln(os.Stderr, "packbench: -n must be a multiple of 4096")
		return false
	}
	shape := []int64{1, int64(c), 64, 64}
	data := reluLike(n, 1, exponential)
	raw := 4 * n

	copyDst := make([]float32, n)
	cp := newBench(func() { copy(copyDst, data) }, minBatch)
	cfgs := configs()
	results := make([]*result, len(cfgs))
	all := []*bench{cp}
	for i, cfg := range cfgs {
		r, err := prepare(data, shape, cfg.opt, minBatch)
		if err != nil {
			fmt.Fprintf(os.Stderr, "packbench: %+v: %v\n", cfg.opt, err)
			return false
		}
		results[i] = r
		all = append(all, r.enc, r.dec)
	}
	for range rounds {
		for _, b := range all {
			b.round()
		}
	}
	_, cpuOK := cputime.Thread()

	fmt.Printf("packing benchmark: %d float32 (%.1f MB) shaped %v, ReLU-like (half zeros, rest exponential), one goroutine, %d rounds\n", n, float64(raw)/1e6, shape, rounds)
	fmt.Println("GB/s is float32 bytes (4 per element) per second; medians over rounds, by the thread's CPU time, then by wall time.")
	fmt.Println("CPU time leaves out time the thread waited for a core: this machine is shared with other builds.")
	fmt.Printf("copy(): %.2f GB/s CPU, %.2f wall\n\n", gbps(raw, median(cp.cpu)), gbps(raw, median(cp.wall)))
	fmt.Println("| bits | scheme | clip | compression | encode GB/s cpu / wall | decode GB/s cpu / wall | enc / copy | dec / copy | wire bytes | float32 / wire | max abs error |")
	fmt.Println("|---:|---|---:|---|---:|---:|---:|---:|---:|---:|---:|")
	pick := func(b *bench) time.Duration {
		if cpuOK {
			return median(b.cpu)
		}
		return median(b.wall)
	}
	copyT := pick(cp)
	type key struct {
		bits   int
		scheme packing.Scheme
		clip   float64
		comp   packing.Compression
	}
	byKey := map[key]*result{}
	for i, cfg := range cfgs {
		o, r := cfg.opt, results[i]
		scheme := o.Scheme
		if scheme == packing.SchemeAuto {
			switch o.Bits {
			case 32:
				scheme = packing.SchemeRaw32
			case 16:
				scheme = packing.SchemeHalf
			default:
				scheme = packing.SchemeAffineTensor
			}
		}
		clip := "-"
		if o.ClipPercentile != 0 {
			clip = fmt.Sprint(o.ClipPercentile)
		}
		byKey[key{o.Bits, scheme, o.ClipPercentile, o.Compression}] = r
		fmt.Printf("| %d | %v | %s | %v | %.2f / %.2f | %.2f / %.2f | %.1fx | %.1fx | %d | %.2fx | %.3g |\n",
			o.Bits, scheme, clip, o.Compression,
			gbps(raw, median(r.enc.cpu)), gbps(raw, median(r.enc.wall)),
			gbps(raw, median(r.dec.cpu)), gbps(raw, median(r.dec.wall)),
			float64(pick(r.enc))/float64(copyT), float64(pick(r.dec))/float64(copyT),
			r.wire, float64(raw)/float64(r.wire), r.maxErr)
	}

	// Wire size on other activation statistics, 4 bits with compression.
	fmt.Println()
	fmt.Println("| data (4 bits, per tensor, zstd) | wire bytes | float32 / wire |")
	fmt.Println("|---|---:|---:|")
	for _, d := range []struct {
		name string
		x    []float32
	}{
		{"half zeros, rest exponential", data},
		{"half zeros, rest half-normal", reluLike(n, 2, halfNormal)},
	} {
		msg, err := packing.Encode(nil, d.x, shape, packing.Options{Bits: 4, Compression: packing.CompressionZstd})
		if err != nil {
			fmt.Fprintln(os.Stderr, "packbench:", err)
			return false
		}
		fmt.Printf("| %s | %d | %.2fx |\n", d.name, len(msg), float64(raw)/float64(len(msg)))
	}

	fmt.Println()
	ok := true
	check := func(name string, b *bench, want float64) {
		got := gbps(raw, pick(b))
		verdict := "PASS"
		if !(got >= want) {
			verdict = "FAIL"
			ok = false
		}
		fmt.Printf("%s  %-28s %.2f GB/s (target >= %.2f; wall %.2f)\n", verdict, name, got, want, gbps(raw, median(b.wall)))
	}
	t8 := byKey[key{8, packing.SchemeAffineTensor, 0, packing.CompressionNone}]
	t4 := byKey[key{4, packing.SchemeAffineTensor, 0, packing.CompressionNone}]
	z4 := byKey[key{4, packing.SchemeAffineTensor, 0, packing.CompressionZstd}]
	check("8-bit per-tensor encode", t8.enc, 1)
	check("8-bit per-tensor decode", t8.dec, 1)
	check("4-bit per-tensor encode", t4.enc, 0.7)
	check("4-bit per-tensor decode", t4.dec, 0.7)
	ratio := float64(raw) / float64(z4.wire)
	verdict := "PASS"
	if ratio < 10 {
		verdict = "FAIL"
		ok = false
	}
	fmt.Printf("%s  %-28s %.2fx smaller than float32 (target >= 10x)\n", verdict, "4-bit + zstd ReLU-like", ratio)
	fmt.Printf("\n(%.1f s)\n", time.Since(start).Seconds())
	return ok
}
