package ort_test

import (
	"errors"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"testing"

	"github.com/dynoml/dyno/executor/ort"
	"github.com/dynoml/dyno/executor/ort/orttest"
	"github.com/dynoml/dyno/model"
	"github.com/dynoml/dyno/model/mnist"
)

func randomInput(n int, seed uint64) []float32 {
	r := rand.New(rand.NewPCG(seed, 7))
	x := make([]float32, n)
	for i := range x {
		x[i] = float32(r.NormFloat64())
	}
	return x
}

// maxDiff is the largest absolute difference, and whether every value of
// both is finite.
func maxDiff(a, b []float32) (float64, bool) {
	var d float64
	for i := range a {
		if math.IsNaN(float64(a[i])) || math.IsInf(float64(a[i]), 0) || math.IsNaN(float64(b[i])) || math.IsInf(float64(b[i]), 0) {
			return math.Inf(1), false
		}
		d = max(d, math.Abs(float64(a[i])-float64(b[i])))
	}
	return d, true
}

func TestSession(t *testing.T) {
	m, err := model.TinyNet(1)
	if err != nil {
		t.Fatal(err)
	}
	data, err := model.EncodeONNX(m)
	if err != nil {
		t.Fatal(err)
	}
	s, err := ort.OpenBytes(data, "tinynet", ort.Options{Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(s.InputShape(), []int64{1, 3, 32, 32}) || !slices.Equal(s.OutputShape(), []int64{1, 10}) {
		t.Fatalf("shapes %v -> %v", s.InputShape(), s.OutputShape())
	}
	if s.InputName() != "input" || s.OutputName() != "logits" {
		t.Errorf("names %s -> %s", s.InputName(), s.OutputName())
	}
	x := randomInput(s.InputElements(), 1)
	y1, err := s.Run(nil, x)
	if err != nil {
		t.Fatal(err)
	}
	y2, err := s.Run(make([]float32, 0, 10), x)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(y1, y2) {
		t.Error("two runs on the same input differ")
	}
	if _, err := s.Run(nil, x[:10]); !errors.Is(err, ort.ErrShape) {
		t.Errorf("short input: got %v, want ErrShape", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second close: %v", err)
	}
	if _, err := s.Run(nil, x); err == nil {
		t.Error("run after close: no error")
	}
	if _, err := ort.OpenBytes([]byte("not a model"), "garbage", ort.Options{}); err == nil {
		t.Error("garbage model: no error")
	}
	if _, err := ort.Open(filepath.Join(t.TempDir(), "missing.onnx"), ort.Options{}); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
}

// zooModels are the models `make models` builds: the zoo and the trained
// classifier.
func zooModels() []string {
	var names []string
	for _, z := range model.Zoo() {
		names = append(names, z.Name)
	}
	return append(names, "mnist")
}

// TestBlocksChainToTheWholeModel is the splitter's acceptance test: for
// every model of the zoo, running the blocks in sequence through ONNX
// Runtime gives the whole model's output to within 1e-5, and so does
// stopping at any split and going on from there.
func TestBlocksChainToTheWholeModel(t *testing.T) {
	const tol = 1e-5
	for _, name := range zooModels() {
		t.Run(name, func(t *testing.T) {
			dir := orttest.Model(t, name)
			whole, err := ort.Open(filepath.Join(dir, "model.onnx"), ort.Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer whole.Close()
			chain, err := ort.OpenChain(dir, ort.Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer chain.Close()
			if chain.K() < 2 {
				t.Fatalf("%d blocks", chain.K())
			}
			const seed = 11
			x := randomInput(whole.InputElements(), seed)
			if name == "mnist" {
				for i := range x {
					x[i] = float32(math.Abs(float64(x[i]))) / 3 // pixels in [0, 1]-ish
				}
			}
			want, err := whole.Run(nil, x)
			if err != nil {
				t.Fatal(err)
			}
			got, err := chain.Run(0, chain.K(), x)
			if err != nil {
				t.Fatal(err)
			}
			d, finite := maxDiff(got, want)
			if !finite || d > tol {
				t.Fatalf("seed %d: blocks differ from the whole model by %g (finite: %v), want <= %g", seed, d, finite, tol)
			}
			var mx float64
			for _, v := range want {
				mx = max(mx, math.Abs(float64(v)))
			}
			if mx == 0 || mx > 1e3 {
				t.Errorf("seed %d: largest output %g: the seeded weights make the check meaningless", seed, mx)
			}
			t.Logf("%d blocks, max |difference| %.3g, max |output| %.3g", chain.K(), d, mx)
			// RunCPU gives Run's tensor and the thread's CPU time in it.
			again, cpu, err := chain.RunCPU(0, chain.K(), x)
			if err != nil {
				t.Fatal(err)
			}
			if d, _ := maxDiff(again, got); d != 0 {
				t.Errorf("RunCPU differs from Run by %g", d)
			}
			if runtime.GOOS == "linux" && cpu <= 0 {
				t.Errorf("RunCPU on linux: thread CPU time %v", cpu)
			}
			// Stop at a middle split and resume.
			s := chain.K() / 2
			mid, err := chain.Run(0, s, x)
			if err != nil {
				t.Fatal(err)
			}
			if int64(len(mid)) != chain.Manifest.Elements(s) {
				t.Errorf("split %d carries %d values, the manifest says %d", s, len(mid), chain.Manifest.Elements(s))
			}
			rest, err := chain.Run(s, chain.K(), mid)
			if err != nil {
				t.Fatal(err)
			}
			if d, _ := maxDiff(rest, want); d > tol {
				t.Errorf("resuming at split %d differs by %g", s, d)
			}
		})
	}
}

// TestClassifierAccuracy checks the trained reference classifier, as
// exported and run by ONNX Runtime, on the whole MNIST test set.
func TestClassifierAccuracy(t *testing.T) {
	dir := orttest.Model(t, "mnist")
	s, err := ort.Open(filepath.Join(dir, "model.onnx"), ort.Options{Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	mdir, err := mnist.Dir()
	if err != nil {
		t.Fatal(err)
	}
	test, err := mnist.LoadTest(mdir)
	if err != nil {
		t.Fatal(err)
	}
	ok := 0
	var y []float32
	for i := 0; i < test.Count(); i++ {
		y, err = s.Run(y, test.Image(i))
		if err != nil {
			t.Fatal(err)
		}
		if argmax(y) == int(test.Labels[i]) {
			ok++
		}
	}
	acc := float64(ok) / float64(test.Count())
	t.Logf("test accuracy %.4f", acc)
	if acc < 0.98 {
		t.Errorf("test accuracy %.4f, want at least 0.98", acc)
	}
}

func argmax(v []float32) int {
	best := 0
	for i, x := range v {
		if x > v[best] {
			best = i
		}
	}
	return best
}

func TestOpenChainErrors(t *testing.T) {
	dir := t.TempDir()
	z, err := model.ZooByName("tinynet")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := model.WriteZoo(z, 1, dir); err != nil {
		t.Fatal(err)
	}
	c, err := ort.OpenChain(filepath.Join(dir, "model.json"), ort.Options{Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Run(3, 1, nil); err == nil {
		t.Error("running backwards: no error")
	}
	c.Close()
	// A manifest whose shapes disagree with the block files.
	m, err := model.LoadManifest(filepath.Join(dir, "model.json"))
	if err != nil {
		t.Fatal(err)
	}
	m.Blocks[1].Output = model.NewTensor(m.Blocks[1].Output.Name, 1, 3)
	f, err := os.Create(filepath.Join(dir, "model.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := model.WriteManifest(f, m); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if _, err := ort.OpenChain(dir, ort.Options{Threads: 1}); err == nil {
		t.Error("mismatched manifest: no error")
	}
	if _, err := ort.OpenChain(filepath.Join(dir, "nope"), ort.Options{}); err == nil {
		t.Error("missing manifest: no error")
	}
}
