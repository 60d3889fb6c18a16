package device

import (
	"math/rand/v2"

	"github.com/dynoml/dyno/model/mnist"
)

// MNIST serves the images of an MNIST set in order, with their labels, and
// starts again at the end.
type MNIST struct {
	Set *mnist.Set
	i   int
}

// Next implements Inputs.
func (m *MNIST) Next() (Input, bool) {
	if m.Set.Count() == 0 {
		return Input{}, false
	}
	i := m.i % m.Set.Count()
	m.i++
	return Input{X: m.Set.Image(i), Label: int(m.Set.Labels[i])}, true
}

// Random serves tensors of standard normal values without labels (no
// accuracy signal): for models that come without a labelled data set.
type Random struct {
	Elements int
	Rng      *rand.Rand
	buf      []float32
}

// Next implements Inputs.
func (r *Random) Next() (Input, bool) {
	if cap(r.buf) < r.Elements {
		r.buf = make([]float32, r.Elements)
	}
	r.buf = r.buf[:r.Elements]
	for i := range r.buf {
		r.buf[i] = float32(r.Rng.NormFloat64())
	}
	return Input{X: r.buf, Label: -1}, true
}
