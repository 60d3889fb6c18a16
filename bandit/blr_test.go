package bandit

import (
	"math"
	"math/rand/v2"
	"testing"

	"gonum.org/v1/gonum/mat"
)

// TestBLRSmallMatchesGonum runs the same random sequence of forgetting,
// updates and drift through the written-out path and through gonum's calls
// and requires the same posterior.
func TestBLRSmallMatchesGonum(t *testing.T) {
	for _, d := range []int{1, 2} {
		const seed = 7
		rng := rand.New(rand.NewPCG(seed, uint64(d)))
		mean0, sd0 := make([]float64, d), make([]float64, d)
		for i := range mean0 {
			mean0[i], sd0[i] = 1, 0.5
		}
		small, gen := newBLR(mean0, sd0), newBLR(mean0, sd0)
		gen.general = true
		x := make([]float64, d)
		q, caps := make([]float64, d), make([]float64, d)
		for i := range q {
			q[i], caps[i] = 1e-3, 1
		}
		for step := 0; step < 500; step++ {
			for i := range x {
				x[i] = rng.Float64()
			}
			y := 2*x[0] + 0.1*rng.NormFloat64()
			lam := 0.9 + 0.1*rng.Float64()
			small.forget(x, lam)
			gen.forget(x, lam)
			small.update(x, y, 50)
			gen.update(x, y, 50)
			if step%7 == 0 {
				small.drift(q, caps)
				gen.drift(q, caps)
			}
		}
		for i := 0; i < d; i++ {
			if !approxEq(small.meanAt(i), gen.meanAt(i), 1e-9) {
				t.Errorf("d=%d seed %d: mean[%d] %g (small) vs %g (gonum)", d, seed, i, small.meanAt(i), gen.meanAt(i))
			}
			for j := 0; j < d; j++ {
				if !approxEq(small.cov.At(i, j), gen.cov.At(i, j), 1e-9) || !approxEq(small.prec.At(i, j), gen.prec.At(i, j), 1e-9) {
					t.Errorf("d=%d seed %d: matrices differ at %d,%d", d, seed, i, j)
				}
			}
		}
	}
}

// TestBLRRankOneKeepsInverse checks that after many rank-one steps the
// covariance is still the inverse of the precision, for small and general
// dimensions.
func TestBLRRankOneKeepsInverse(t *testing.T) {
	for _, d := range []int{1, 2, 3, 7} {
		const seed = 11
		rng := rand.New(rand.NewPCG(seed, uint64(d)))
		mean0, sd0 := make([]float64, d), make([]float64, d)
		for i := range sd0 {
			sd0[i] = 0.5 + float64(i)
		}
		b := newBLR(mean0, sd0)
		x := make([]float64, d)
		q, caps := make([]float64, d), make([]float64, d)
		for i := range q {
			q[i], caps[i] = 1e-4, 100
		}
		for step := 0; step < 2000; step++ {
			for i := range x {
				x[i] = rng.NormFloat64()
			}
			b.forget(x, 0.97)
			b.update(x, rng.NormFloat64(), 10)
			if step%16 == 0 {
				b.drift(q, caps)
			}
		}
		var prod mat.Dense
		prod.Mul(b.prec, b.cov)
		for i := 0; i < d; i++ {
			for j := 0; j < d; j++ {
				want := 0.0
				if i == j {
					want = 1
				}
				if math.Abs(prod.At(i, j)-want) > 1e-6 {
					t.Fatalf("d=%d seed %d: (Lambda S)[%d,%d] = %g, want %g", d, seed, i, j, prod.At(i, j), want)
				}
			}
		}
	}
}

// TestBLRNoForgettingIsBatch checks that without forgetting the sequential
// posterior mean is the batch Bayesian one: (Lambda0 + w XᵀX)⁻¹ (Lambda0
// theta0 + w Xᵀy).
func TestBLRNoForgettingIsBatch(t *testing.T) {
	const seed, n, w = 3, 200, 4.0
	rng := rand.New(rand.NewPCG(seed, 0))
	b := newBLR([]float64{1, 0}, []float64{0.5, 2})
	a := mat.NewSymDense(2, []float64{4, 0, 0, 0.25})
	rhs := mat.NewVecDense(2, []float64{4, 0})
	for i := 0; i < n; i++ {
		x := []float64{rng.Float64(), 1}
		y := 1.5*x[0] + 0.3 + 0.05*rng.NormFloat64()
		b.update(x, y, w)
		xv := mat.NewVecDense(2, x)
		a.SymRankOne(a, w, xv)
		rhs.AddScaledVec(rhs, w*y, xv)
	}
	var want mat.VecDense
	if err := want.SolveVec(a, rhs); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ {
		if !approxEq(b.meanAt(i), want.AtVec(i), 1e-9) {
			t.Errorf("seed %d: mean[%d] = %g, batch %g", seed, i, b.meanAt(i), want.AtVec(i))
		}
	}
}

// TestBLRForgetOnlyAlongData checks directional forgetting: information
// along an unobserved direction stays at the prior.
func TestBLRForgetOnlyAlongData(t *testing.T) {
	b := newBLR([]float64{1, 1}, []float64{0.5, 0.5})
	for i := 0; i < 1000; i++ {
		b.forget([]float64{1, 0}, 0.9)
		b.update([]float64{1, 0}, 2, 100)
	}
	if !approxEq(b.cov.At(1, 1), 0.25, 1e-12) || !approxEq(b.meanAt(1), 1, 1e-12) {
		t.Errorf("unobserved coefficient moved: mean %g var %g, want 1 and 0.25", b.meanAt(1), b.cov.At(1, 1))
	}
	if !approxEq(b.meanAt(0), 2, 1e-6) {
		t.Errorf("observed coefficient %g, want 2", b.meanAt(0))
	}
	// the memory along the data is about 1/(1-lambda) observations
	if v, want := b.cov.At(0, 0), (1-0.9)/100.0; !approxEq(v, want, 0.2) {
		t.Errorf("variance along the data %g, want about %g", v, want)
	}
}

func approxEq(a, b, tol float64) bool {
	return math.Abs(a-b) <= tol*math.Max(1, math.Max(math.Abs(a), math.Abs(b)))
}
