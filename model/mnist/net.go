package mnist

import (
	"fmt"
	"math"
	"math/rand/v2"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/blas32"

	"github.com/dynoml/dyno/model"
	"github.com/dynoml/dyno/model/onnxpb"
)

// The network: conv 5x5x8 (valid) - ReLU - maxpool 2 - conv 5x5x16 (valid)
// - ReLU - maxpool 2 - fully connected 256 -> 10. 28x28 -> 24x24 -> 12x12
// -> 8x8 -> 4x4; 0.65 MFLOPs and 6.0 k parameters.
const (
	k      = 5  // kernel side
	c1     = 8  // conv1 channels
	c2     = 16 // conv2 channels
	s1     = 24 // conv1 output side
	p1     = 12 // pool1 output side
	s2     = 8  // conv2 output side
	p2     = 4  // pool2 output side
	feat   = c2 * p2 * p2
	labels = 10
)

// Net holds the weights, row-major as ONNX lays them out: W1 [8,1,5,5],
// W2 [16,8,5,5], W3 [10,256].
type Net struct {
	W1, B1, W2, B2, W3, B3 []float32
}

// newNet draws He-normal weights and zero biases.
func newNet(rng *rand.Rand) *Net {
	he := func(n, fanIn int) []float32 {
		w := make([]float32, n)
		std := math.Sqrt(2 / float64(fanIn))
		for i := range w {
			w[i] = float32(rng.NormFloat64() * std)
		}
		return w
	}
	return &Net{
		W1: he(c1*k*k, k*k), B1: make([]float32, c1),
		W2: he(c2*c1*k*k, c1*k*k), B2: make([]float32, c2),
		W3: he(labels*feat, feat), B3: make([]float32, labels),
	}
}

// params lists the weight tensors in a fixed order (for the optimiser).
func (n *Net) params() [][]float32 { return [][]float32{n.W1, n.B1, n.W2, n.B2, n.W3, n.B3} }

// work holds the activations and gradients of one batch, allocated once.
type work struct {
	b                  int
	cols1, out1        []float32 // [25][b*576], [8][b*576]
	pool1              []float32 // [8][b][12][12]
	arg1               []int32   // index into out1 of each pool1 max
	cols2, out2        []float32 // [200][b*64], [16][b*64]
	arg2               []int32
	pool2              []float32 // [16][b][4][4]
	x3                 []float32 // [b][256]
	logits             []float32 // [b][10]
	dOut1, dOut2, dCol []float32
	dPool1, dX3        []float32
	grad               *Net
}

func newWork(b int) *work {
	return &work{
		b:     b,
		cols1: make([]float32, k*k*b*s1*s1), out1: make([]float32, c1*b*s1*s1),
		pool1: make([]float32, c1*b*p1*p1), arg1: make([]int32, c1*b*p1*p1),
		cols2: make([]float32, c1*k*k*b*s2*s2), out2: make([]float32, c2*b*s2*s2),
		arg2: make([]int32, c2*b*p2*p2), pool2: make([]float32, c2*b*p2*p2), x3: make([]float32, b*feat),
		logits: make([]float32, b*labels),
		dOut1:  make([]float32, c1*b*s1*s1), dOut2: make([]float32, c2*b*s2*s2),
		dCol: make([]float32, c1*k*k*b*s2*s2), dPool1: make([]float32, c1*b*p1*p1),
		dX3: make([]float32, b*feat),
		grad: &Net{
			W1: make([]float32, c1*k*k), B1: make([]float32, c1),
			W2: make([]float32, c2*c1*k*k), B2: make([]float32, c2),
			W3: make([]float32, labels*feat), B3: make([]float32, labels),
		},
	}
}

func gemm(tA, tB blas.Transpose, m, n, kk int, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	blas32.Implementation().Sgemm(tA, tB, m, n, kk, 1, a, lda, b, ldb, beta, c, ldc)
}

// forward runs images (b*784 pixels) through the net into w.logits.
func (n *Net) forward(w *work, images []float32) {
	b := w.b
	// conv1: im2col [25][b*576], then W1 [8x25] x cols.
	np1 := b * s1 * s1
	for ky := 0; ky < k; ky++ {
		for kx := 0; kx < k; kx++ {
			row := w.cols1[(ky*k+kx)*np1:]
			for s := 0; s < b; s++ {
				img := images[s*Side*Side:]
				dst := row[s*s1*s1:]
				for y := 0; y < s1; y++ {
					copy(dst[y*s1:(y+1)*s1], img[(y+ky)*Side+kx:])
				}
			}
		}
	}
	gemm(blas.NoTrans, blas.NoTrans, c1, np1, k*k, n.W1, k*k, w.cols1, np1, 0, w.out1, np1)
	biasReLU(w.out1, n.B1, np1)
	maxPool(w.out1, w.pool1, w.arg1, c1, b, s1)

	// conv2: im2col of pool1 [8][b][12][12] into [200][b*64].
	np2 := b * s2 * s2
	for c := 0; c < c1; c++ {
		for ky := 0; ky < k; ky++ {
			for kx := 0; kx < k; kx++ {
				row := w.cols2[((c*k+ky)*k+kx)*np2:]
				for s := 0; s < b; s++ {
					src := w.pool1[(c*b+s)*p1*p1:]
					dst := row[s*s2*s2:]
					for y := 0; y < s2; y++ {
						copy(dst[y*s2:(y+1)*s2], src[(y+ky)*p1+kx:])
					}
				}
			}
		}
	}
	gemm(blas.NoTrans, blas.NoTrans, c2, np2, c1*k*k, n.W2, c1*k*k, w.cols2, np2, 0, w.out2, np2)
	biasReLU(w.out2, n.B2, np2)
	maxPool(w.out2, w.pool2, w.arg2, c2, b, s2)
	// Flatten per sample in (channel, y, x) order, as ONNX Flatten does.
	for c := 0; c < c2; c++ {
		for s := 0; s < b; s++ {
			copy(w.x3[s*feat+c*p2*p2:s*feat+(c+1)*p2*p2], w.pool2[(c*b+s)*p2*p2:])
		}
	}
	gemm(blas.NoTrans, blas.Trans, b, labels, feat, w.x3, feat, n.W3, feat, 0, w.logits, labels)
	for s := 0; s < b; s++ {
		for j := 0; j < labels; j++ {
			w.logits[s*labels+j] += n.B3[j]
		}
	}
}

func biasReLU(x, bias []float32, stride int) {
	for c, bv := range bias {
		row := x[c*stride : (c+1)*stride]
		for i, v := range row {
			v += bv
			if v < 0 {
				v = 0
			}
			row[i] = v
		}
	}
}

// maxPool pools [ch][b][side][side] by 2 into [ch][b][side/2][side/2],
// recording where each maximum came from.
func maxPool(in, out []float32, arg []int32, ch, b, side int) {
	h := side / 2
	for cs := 0; cs < ch*b; cs++ {
		src := in[cs*side*side:]
		for y := 0; y < h; y++ {
			for x := 0; x < h; x++ {
				i := (2*y)*side + 2*x
				best, bi := src[i], i
				for _, j := range [3]int{i + 1, i + side, i + side + 1} {
					if src[j] > best {
						best, bi = src[j], j
					}
				}
				o := cs*h*h + y*h + x
				out[o] = best
				arg[o] = int32(cs*side*side + bi)
			}
		}
	}
}

// backward computes the gradients of the mean cross-entropy of the batch
// into w.grad and returns the loss; forward must have run.
func (n *Net) backward(w *work, lbl []uint8) float64 {
	b := w.b
	g := w.grad
	loss := 0.0
	dl := make([]float32, b*labels)
	for s := 0; s < b; s++ {
		row := w.logits[s*labels : (s+1)*labels]
		mx := row[0]
		for _, v := range row {
			mx = max(mx, v)
		}
		var sum float64
		for _, v := range row {
			sum += math.Exp(float64(v - mx))
		}
		for j, v := range row {
			p := math.Exp(float64(v-mx)) / sum
			if j == int(lbl[s]) {
				loss -= math.Log(max(p, 1e-12))
				p--
			}
			dl[s*labels+j] = float32(p / float64(b))
		}
	}
	// fc
	gemm(blas.Trans, blas.NoTrans, labels, feat, b, dl, labels, w.x3, feat, 0, g.W3, feat)
	for j := range g.B3 {
		var sum float32
		for s := 0; s < b; s++ {
			sum += dl[s*labels+j]
		}
		g.B3[j] = sum
	}
	gemm(blas.NoTrans, blas.NoTrans, b, feat, labels, dl, labels, n.W3, feat, 0, w.dX3, feat)
	// pool2 and ReLU2 back into dOut2 [16][b*64]
	clear(w.dOut2)
	for c := 0; c < c2; c++ {
		for s := 0; s < b; s++ {
			for i := 0; i < p2*p2; i++ {
				o := (c*b+s)*p2*p2 + i
				w.dOut2[w.arg2[o]] += w.dX3[s*feat+c*p2*p2+i]
			}
		}
	}
	np2 := b * s2 * s2
	reluMask(w.dOut2, w.out2)
	gemm(blas.NoTrans, blas.Trans, c2, c1*k*k, np2, w.dOut2, np2, w.cols2, np2, 0, g.W2, c1*k*k)
	rowSums(g.B2, w.dOut2, np2)
	gemm(blas.Trans, blas.NoTrans, c1*k*k, np2, c2, n.W2, c1*k*k, w.dOut2, np2, 0, w.dCol, np2)
	// col2im into dPool1 [8][b][12][12]
	clear(w.dPool1)
	for c := 0; c < c1; c++ {
		for ky := 0; ky < k; ky++ {
			for kx := 0; kx < k; kx++ {
				row := w.dCol[((c*k+ky)*k+kx)*np2:]
				for s := 0; s < b; s++ {
					dst := w.dPool1[(c*b+s)*p1*p1:]
					src := row[s*s2*s2:]
					for y := 0; y < s2; y++ {
						d := dst[(y+ky)*p1+kx : (y+ky)*p1+kx+s2]
						for x, v := range src[y*s2 : (y+1)*s2] {
							d[x] += v
						}
					}
				}
			}
		}
	}
	clear(w.dOut1)
	for o, a := range w.arg1 {
		w.dOut1[a] += w.dPool1[o]
	}
	np1 := b * s1 * s1
	reluMask(w.dOut1, w.out1)
	gemm(blas.NoTrans, blas.Trans, c1, k*k, np1, w.dOut1, np1, w.cols1, np1, 0, g.W1, k*k)
	rowSums(g.B1, w.dOut1, np1)
	return loss / float64(b)
}

func reluMask(d, out []float32) {
	for i, v := range out {
		if v <= 0 {
			d[i] = 0
		}
	}
}

func rowSums(dst, m []float32, stride int) {
	for r := range dst {
		var sum float32
		for _, v := range m[r*stride : (r+1)*stride] {
			sum += v
		}
		dst[r] = sum
	}
}

// Predict returns the predicted digit of every image in s, in batches.
func (n *Net) Predict(s *Set) []uint8 {
	batch := min(500, s.Count())
	if batch == 0 {
		return nil
	}
	w := newWork(batch)
	out := make([]uint8, s.Count())
	buf := make([]float32, batch*Side*Side)
	for i := 0; i < s.Count(); i += batch {
		m := min(batch, s.Count()-i)
		clear(buf)
		copy(buf, s.Images[i*Side*Side:(i+m)*Side*Side])
		n.forward(w, buf)
		for j := 0; j < m; j++ {
			out[i+j] = uint8(argmax(w.logits[j*labels : (j+1)*labels]))
		}
	}
	return out
}

// Accuracy is the share of s the net classifies correctly.
func (n *Net) Accuracy(s *Set) float64 {
	pred := n.Predict(s)
	ok := 0
	for i, p := range pred {
		if p == s.Labels[i] {
			ok++
		}
	}
	return float64(ok) / float64(s.Count())
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

// InputName and OutputName are the tensors of the exported model.
const (
	InputName  = "image"
	OutputName = "logits"
)

// ONNX exports the net: input "image" [1,1,28,28] (pixels in [0, 1]),
// output "logits" [1,10].
func (n *Net) ONNX(doc string) *onnxpb.ModelProto {
	b := model.NewBuilder("mnist")
	b.Input(InputName, 1, 1, Side, Side)
	w1 := b.Init(model.FloatTensor("conv1.weight", []int64{c1, 1, k, k}, n.W1))
	b1 := b.Init(model.FloatTensor("conv1.bias", []int64{c1}, n.B1))
	x := b.Node("Conv", "conv1", []string{InputName, w1, b1}, model.ConvAttrs(k, 1, 0)...)
	x = b.Node("Relu", "conv1.relu", []string{x})
	x = b.Node("MaxPool", "pool1", []string{x}, model.ConvAttrs(2, 2, 0)...)
	w2 := b.Init(model.FloatTensor("conv2.weight", []int64{c2, c1, k, k}, n.W2))
	b2 := b.Init(model.FloatTensor("conv2.bias", []int64{c2}, n.B2))
	x = b.Node("Conv", "conv2", []string{x, w2, b2}, model.ConvAttrs(k, 1, 0)...)
	x = b.Node("Relu", "conv2.relu", []string{x})
	x = b.Node("MaxPool", "pool2", []string{x}, model.ConvAttrs(2, 2, 0)...)
	x = b.Node("Flatten", "flatten", []string{x}, model.AttrInt("axis", 1))
	w3 := b.Init(model.FloatTensor("fc.weight", []int64{labels, feat}, n.W3))
	b3 := b.Init(model.FloatTensor("fc.bias", []int64{labels}, n.B3))
	b.Node("Gemm", OutputName, []string{x, w3, b3}, model.AttrInt("transB", 1))
	b.Output(OutputName, 1, labels)
	return b.Model(doc)
}

// FromONNX reads the weights back from an exported model.
func FromONNX(m *onnxpb.ModelProto) (*Net, error) {
	byName := map[string]*onnxpb.TensorProto{}
	for _, t := range m.GetGraph().GetInitializer() {
		byName[t.GetName()] = t
	}
	n := &Net{}
	for _, p := range []struct {
		name string
		dst  *[]float32
		size int
	}{
		{"conv1.weight", &n.W1, c1 * k * k}, {"conv1.bias", &n.B1, c1},
		{"conv2.weight", &n.W2, c2 * c1 * k * k}, {"conv2.bias", &n.B2, c2},
		{"fc.weight", &n.W3, labels * feat}, {"fc.bias", &n.B3, labels},
	} {
		t, ok := byName[p.name]
		if !ok {
			return nil, fmt.Errorf("mnist: model has no initializer %q", p.name)
		}
		v, err := model.FloatValues(t)
		if err != nil {
			return nil, fmt.Errorf("mnist: %w", err)
		}
		if len(v) != p.size {
			return nil, fmt.Errorf("mnist: initializer %q has %d values, want %d", p.name, len(v), p.size)
		}
		*p.dst = v
	}
	return n, nil
}
