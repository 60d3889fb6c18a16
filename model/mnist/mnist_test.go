package mnist

import (
	"context"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/dynoml/dyno/model"
)

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// randomSet is n images of noise with random labels.
func randomSet(n int, seed uint64) *Set {
	r := rand.New(rand.NewPCG(seed, 2))
	s := &Set{Images: make([]float32, n*Side*Side), Labels: make([]uint8, n)}
	for i := range s.Images {
		s.Images[i] = float32(r.Float64())
	}
	for i := range s.Labels {
		s.Labels[i] = uint8(r.IntN(labels))
	}
	return s
}

// loss is the mean cross-entropy of the batch, in float64.
func loss(n *Net, w *work, s *Set) float64 {
	n.forward(w, s.Images)
	var l float64
	for i := 0; i < w.b; i++ {
		row := w.logits[i*labels : (i+1)*labels]
		mx := float64(slices.Max(row))
		var sum float64
		for _, v := range row {
			sum += math.Exp(float64(v) - mx)
		}
		l -= float64(row[s.Labels[i]]) - mx - math.Log(sum)
	}
	return l / float64(w.b)
}

// TestGradients compares backward with central differences on a few
// weights of every tensor.
func TestGradients(t *testing.T) {
	for seed := uint64(1); seed <= 2; seed++ {
		checkGradients(t, seed)
	}
}

func checkGradients(t *testing.T, seed uint64) {
	r := rand.New(rand.NewPCG(seed, 1))
	n := newNet(r)
	for _, b := range [][]float32{n.B1, n.B2, n.B3} {
		for i := range b {
			b[i] = float32(r.NormFloat64() * 0.1)
		}
	}
	s := randomSet(4, seed)
	w := newWork(4)
	n.forward(w, s.Images)
	n.backward(w, s.Labels)
	names := []string{"W1", "B1", "W2", "B2", "W3", "B3"}
	for pi, p := range n.params() {
		g := w.grad.params()[pi]
		for trial := 0; trial < 4; trial++ {
			j := r.IntN(len(p))
			const eps = 1e-4 // small: ReLU and max-pool kinks bend larger steps
			old := p[j]
			p[j] = old + eps
			up := loss(n, newWork(4), s)
			p[j] = old - eps
			down := loss(n, newWork(4), s)
			p[j] = old
			num := (up - down) / (2 * eps)
			if d := math.Abs(num - float64(g[j])); d > 3e-3+0.05*math.Abs(num) {
				t.Errorf("seed %d: %s[%d]: backward %.6g, numeric %.6g", seed, names[pi], j, g[j], num)
			}
		}
	}
}

func TestTrainingIsReproducible(t *testing.T) {
	s := randomSet(96, 9)
	cfg := Config{Seed: 5, Epochs: 1, Batch: 32}
	a, _, err := Train(context.Background(), cfg, s, s.Head(32), quiet())
	if err != nil {
		t.Fatal(err)
	}
	b, _, err := Train(context.Background(), cfg, s, s.Head(32), quiet())
	if err != nil {
		t.Fatal(err)
	}
	for i, p := range a.params() {
		if !slices.Equal(p, b.params()[i]) {
			t.Fatalf("seed %d: tensor %d differs between two runs", cfg.Seed, i)
		}
	}
	cfg.Seed = 6
	c, _, _ := Train(context.Background(), cfg, s, s.Head(32), quiet())
	if slices.Equal(a.W1, c.W1) {
		t.Error("seeds 5 and 6 trained the same weights")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, _, err := Train(ctx, cfg, s, s, quiet()); err == nil {
		t.Error("a cancelled context did not stop training")
	}
	if _, _, err := Train(context.Background(), Config{Batch: 33, Workers: 2}, s, s, quiet()); err == nil {
		t.Error("batch 33 over 2 workers: no error")
	}
}

func TestONNXExport(t *testing.T) {
	n := newNet(rand.New(rand.NewPCG(1, 1)))
	m := n.ONNX("test")
	back, err := FromONNX(m)
	if err != nil {
		t.Fatal(err)
	}
	for i, p := range n.params() {
		if !slices.Equal(p, back.params()[i]) {
			t.Fatalf("tensor %d does not survive export", i)
		}
	}
	g, err := model.AnalyseONNX(m, model.GraphOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// conv1 2*8*576*25 + 8*576, pool1 8*144*3, conv2 2*16*64*200 + 16*64,
	// pool2 16*16*3, fc 2*256*10 + 10.
	if got, want := g.TotalFLOPs(), int64(235008+3456+410624+768+5130); got != want {
		t.Errorf("FLOPs %d, want %d", got, want)
	}
	if got, want := g.TotalParams(), int64(208+3216+2570); got != want {
		t.Errorf("params %d, want %d", got, want)
	}
	s, err := g.Split(model.SplitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var ends []string
	for _, b := range s.Manifest.Blocks {
		ends = append(ends, b.Output.Name)
	}
	if want := []string{"conv1.relu", "pool1", "conv2.relu", "pool2", "flatten", "logits"}; !slices.Equal(ends, want) {
		t.Errorf("blocks end at %v, want %v", ends, want)
	}
	m.Graph.Initializer = m.Graph.Initializer[1:]
	if _, err := FromONNX(m); err == nil {
		t.Error("a model without conv1.weight: no error")
	}
}

// The Go forward pass agrees with the per-sample semantics: an image's
// logits, and so its prediction, do not depend on how images are batched.
// (Logits, not only predictions: an untrained net can predict one digit
// for every image, which a pass that mixed up the batch would match.)
func TestPredictIsBatchIndependent(t *testing.T) {
	n := newNet(rand.New(rand.NewPCG(2, 2)))
	s := randomSet(7, 4)
	batch := newWork(s.Count())
	n.forward(batch, s.Images)
	all := n.Predict(s)
	one := newWork(1)
	for i := 0; i < s.Count(); i++ {
		n.forward(one, s.Image(i))
		for j, v := range one.logits {
			if u := batch.logits[i*labels+j]; math.Abs(float64(v-u)) > 1e-5*max(1, math.Abs(float64(u))) {
				t.Fatalf("image %d, logit %d: alone %g, in a batch %g", i, j, v, u)
			}
		}
		if p := n.Predict(&Set{Images: s.Image(i), Labels: s.Labels[i : i+1]}); p[0] != all[i] {
			t.Fatalf("image %d: alone %d, in a batch %d", i, p[0], all[i])
		}
	}
}

func TestLoadData(t *testing.T) {
	dir, err := Dir()
	if err != nil {
		t.Fatalf("%v (the MNIST data comes with the Go module %s: `go mod download`)", err, Module)
	}
	test, err := LoadTest(dir)
	if err != nil {
		t.Fatal(err)
	}
	if test.Count() != 10000 || len(test.Images) != 10000*Side*Side {
		t.Fatalf("%d test images, %d pixels", test.Count(), len(test.Images))
	}
	if mx := slices.Max(test.Images); mx != 1 {
		t.Errorf("largest pixel %g, want 1", mx)
	}
	if _, _, err := Load(t.TempDir()); err == nil {
		t.Error("an empty folder: no error")
	}
	t.Setenv(EnvDir, "/nonexistent")
	if d, _ := Dir(); d != "/nonexistent" {
		t.Errorf("%s is not honoured: %s", EnvDir, d)
	}
}

// A short run on real digits learns: this guards the training loop end to
// end; the full run's 98% is checked on the built model by executor/ort.
func TestShortTrainingLearns(t *testing.T) {
	dir, err := Dir()
	if err != nil {
		t.Fatal(err)
	}
	test, err := LoadTest(dir)
	if err != nil {
		t.Fatal(err)
	}
	train := &Set{Images: test.Images[2000*Side*Side : 4000*Side*Side], Labels: test.Labels[2000:4000]}
	_, res, err := Train(context.Background(), Config{Epochs: 1}, train, test.Head(500), quiet())
	if err != nil {
		t.Fatal(err)
	}
	if res.TestAccuracy < 0.8 {
		t.Errorf("accuracy %.3f after 2000 images, want at least 0.8", res.TestAccuracy)
	}
}
