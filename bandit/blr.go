package bandit

import (
	"math"

	"gonum.org/v1/gonum/blas/blas64"
	"gonum.org/v1/gonum/mat"
)

// blr is a Bayesian linear regression y = thetaᵀx + e, e ~ N(0, 1/w), with a
// Gaussian prior on theta. It keeps the precision Lambda, its inverse S (the
// posterior covariance) and the mean theta, and changes them only by
// rank-one steps: an observation adds w·x·xᵀ to Lambda (Sherman-Morrison on
// S), and forgetting removes a share of the information along the direction
// just observed (directional forgetting, Kulhavý 1987), so that old data
// fades where new data arrives while the prior holds in directions no data
// excites: a stage that is never observed keeps its prior, and one that is
// observed tracks change with a memory of about 1/(1-lambda) reports.
//
// The matrices are gonum types (mat.SymDense, upper triangle stored) and
// every step is a symmetric rank-one update (BLAS Syr) or a symmetric
// matrix-vector product (Symv). For the general case those are gonum's
// calls; for the one- and two-dimensional stages of dyno's hot path the
// same updates are written out on the same storage, because the call
// overhead would otherwise dominate (TestBLRSmallMatchesGonum holds the two
// paths together). Nothing allocates after construction.
type blr struct {
	d    int
	prec *mat.SymDense // Lambda
	cov  *mat.SymDense // S = Lambda⁻¹
	mean *mat.VecDense // theta
	px   *mat.VecDense // work: Lambda·x, then S·x
	xv   *mat.VecDense // work: a copy of x as a gonum vector
	// raw storage of the above (row-major, stride d)
	p, s, m []float64
	// general forces gonum's calls even for small d (tests compare paths)
	general bool
}

// smallDim is the largest dimension the written-out path handles.
const smallDim = 2

func (b *blr) small() bool { return b.d <= smallDim && !b.general }

// newBLR builds the prior N(mean0, diag(sd0²)).
func newBLR(mean0, sd0 []float64) *blr {
	d := len(mean0)
	b := &blr{
		d:    d,
		prec: mat.NewSymDense(d, nil),
		cov:  mat.NewSymDense(d, nil),
		mean: mat.NewVecDense(d, append([]float64(nil), mean0...)),
		px:   mat.NewVecDense(d, nil),
		xv:   mat.NewVecDense(d, nil),
	}
	for i, s := range sd0 {
		b.prec.SetSym(i, i, 1/(s*s))
		b.cov.SetSym(i, i, s*s)
	}
	b.p, b.s, b.m = b.prec.RawSymmetric().Data, b.cov.RawSymmetric().Data, b.mean.RawVector().Data
	return b
}

// predict returns thetaᵀx.
func (b *blr) predict(x []float64) float64 {
	var s float64
	for i := 0; i < b.d; i++ {
		s += b.m[i] * x[i]
	}
	return s
}

// variance returns xᵀ S x, the posterior variance of thetaᵀx.
func (b *blr) variance(x []float64) float64 {
	switch b.d {
	case 1:
		return b.s[0] * x[0] * x[0]
	case 2:
		return b.s[0]*x[0]*x[0] + 2*b.s[1]*x[0]*x[1] + b.s[3]*x[1]*x[1]
	}
	return quad(b.cov.RawSymmetric(), x)
}

// maxEigen bounds the posterior variance per unit of |x|²: the largest
// eigenvalue of S.
func (b *blr) maxEigen() float64 {
	switch b.d {
	case 1:
		return b.s[0]
	case 2:
		a, c, d := b.s[0], b.s[1], b.s[3]
		return (a+d)/2 + math.Sqrt((a-d)*(a-d)/4+c*c)
	}
	// the trace bounds the largest eigenvalue of a positive definite S
	var t float64
	for i := 0; i < b.d; i++ {
		t += b.s[i*b.d+i]
	}
	return t
}

// quad is xᵀ A x for a symmetric A stored in its upper triangle.
func quad(a blas64.Symmetric, x []float64) float64 {
	var s float64
	for i := 0; i < a.N; i++ {
		row := a.Data[i*a.Stride:]
		xi := x[i]
		s += row[i] * xi * xi
		var off float64
		for j := i + 1; j < a.N; j++ {
			off += row[j] * x[j]
		}
		s += 2 * xi * off
	}
	return s
}

// syr is BLAS Syr, A += alpha·x xᵀ on the upper triangle, written out for
// d <= smallDim.
func (b *blr) syr(a []float64, alpha float64, x []float64) {
	a[0] += alpha * x[0] * x[0]
	if b.d == 2 {
		a[1] += alpha * x[0] * x[1]
		a[3] += alpha * x[1] * x[1]
	}
}

// symv is BLAS Symv, y = A x, written out for d <= smallDim.
func (b *blr) symv(a []float64, x, y []float64) {
	if b.d == 1 {
		y[0] = a[0] * x[0]
		return
	}
	y[0] = a[0]*x[0] + a[1]*x[1]
	y[1] = a[1]*x[0] + a[3]*x[1]
}

func dot(x, y []float64, n int) float64 {
	var s float64
	for i := 0; i < n; i++ {
		s += x[i] * y[i]
	}
	return s
}

// forget removes the share 1-lambda of the information along x:
// Lambda -= (1-lambda)·(Lambda x)(Lambda x)ᵀ / (xᵀ Lambda x), and, by
// Sherman-Morrison, S += (1-lambda)/(lambda·xᵀ Lambda x)·x xᵀ. The mean is
// unchanged; only confidence along x drops.
func (b *blr) forget(x []float64, lambda float64) {
	if lambda >= 1 || lambda <= 0 {
		return
	}
	if b.small() {
		var u [smallDim]float64
		b.symv(b.p, x, u[:])
		q := dot(x, u[:], b.d)
		if !(q > 1e-300) {
			return
		}
		b.syr(b.p, -(1-lambda)/q, u[:])
		b.syr(b.s, (1-lambda)/(lambda*q), x)
		return
	}
	xv := b.xv.RawVector()
	copy(xv.Data, x)
	px := b.px.RawVector()
	blas64.Symv(1, b.prec.RawSymmetric(), xv, 0, px)
	q := blas64.Dot(xv, px)
	if !(q > 1e-300) {
		return
	}
	b.prec.SymRankOne(b.prec, -(1-lambda)/q, b.px)
	b.cov.SymRankOne(b.cov, (1-lambda)/(lambda*q), b.xv)
}

// update adds the observation y at x with weight w (the noise precision):
// k = S x / (1/w + xᵀ S x); theta += k·(y - thetaᵀx); S -= (S x)(S x)ᵀ /
// (1/w + xᵀ S x); Lambda += w·x xᵀ.
func (b *blr) update(x []float64, y, w float64) {
	if !(w > 0) || math.IsInf(w, 0) {
		return
	}
	if b.small() {
		var sx [smallDim]float64
		b.symv(b.s, x, sx[:])
		den := 1/w + dot(x, sx[:], b.d)
		innov := y - b.predict(x)
		for i := 0; i < b.d; i++ {
			b.m[i] += sx[i] * innov / den
		}
		b.syr(b.s, -1/den, sx[:])
		b.syr(b.p, w, x)
		return
	}
	xv := b.xv.RawVector()
	copy(xv.Data, x)
	sx := b.px.RawVector()
	blas64.Symv(1, b.cov.RawSymmetric(), xv, 0, sx)
	den := 1/w + blas64.Dot(xv, sx)
	innov := y - blas64.Dot(xv, b.mean.RawVector())
	blas64.Axpy(innov/den, sx, b.mean.RawVector())
	b.cov.SymRankOne(b.cov, -1/den, b.px)
	b.prec.SymRankOne(b.prec, w, b.xv)
}

// drift adds q[j] to the variance of every coefficient whose variance is
// below cap[j], S += diag(q), as d rank-one steps (Sherman-Morrison on
// Lambda for each): the random-walk process noise that lets a posterior no
// data reaches any more loosen again, up to the prior's looseness.
func (b *blr) drift(q, cap []float64) {
	for j := 0; j < b.d; j++ {
		if !(q[j] > 0) || b.s[j*b.d+j] >= cap[j] {
			continue
		}
		// Lambda -= q·(Lambda e_j)(Lambda e_j)ᵀ / (1 + q·Lambda_jj)
		col := b.px.RawVector().Data
		for i := 0; i < b.d; i++ {
			col[i] = b.prec.At(i, j)
		}
		e := b.xv.RawVector().Data
		clear(e)
		e[j] = 1
		alpha := -q[j] / (1 + q[j]*col[j])
		if b.small() {
			b.syr(b.p, alpha, col)
			b.syr(b.s, q[j], e)
			continue
		}
		b.prec.SymRankOne(b.prec, alpha, b.px)
		b.cov.SymRankOne(b.cov, q[j], b.xv)
	}
}

// clone returns an independent copy.
func (b *blr) clone() *blr {
	c := newBLR(b.m, make([]float64, b.d))
	copy(c.p, b.p)
	copy(c.s, b.s)
	c.general = b.general
	return c
}

// meanAt returns theta[i].
func (b *blr) meanAt(i int) float64 { return b.m[i] }

// encode writes the mean, precision and covariance (upper triangles).
func (b *blr) encode(e *encoder) {
	e.u32(uint32(b.d))
	for i := 0; i < b.d; i++ {
		e.f64(b.m[i])
	}
	for _, m := range []*mat.SymDense{b.prec, b.cov} {
		for i := 0; i < b.d; i++ {
			for j := i; j < b.d; j++ {
				e.f64(m.At(i, j))
			}
		}
	}
}

// decode reads what encode wrote into a blr of the same dimension and checks
// that both matrices have a positive diagonal.
func (b *blr) decode(d *decoder, what string) {
	if n := d.u32(what + ".dim"); d.err == nil && int(n) != b.d {
		d.fail("%s: dimension %d, want %d", what, n, b.d)
		return
	}
	for i := 0; i < b.d; i++ {
		b.m[i] = d.finite(what + ".mean")
	}
	for _, m := range []*mat.SymDense{b.prec, b.cov} {
		for i := 0; i < b.d; i++ {
			for j := i; j < b.d; j++ {
				m.SetSym(i, j, d.finite(what+".matrix"))
			}
			if d.err == nil && !(m.At(i, i) > 0) {
				d.fail("%s: matrix diagonal %d is not positive", what, i)
			}
		}
	}
}
