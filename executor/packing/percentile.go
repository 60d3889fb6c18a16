package packing

import (
	"math"
	"math/bits"
	"slices"
)

const (
	maxBins    = 1 << maxDigit // histogram bins per level
	maxDigit   = 10            // key bits resolved per level
	minDigit   = 9             // at least 9, so NaN and Inf get bins of their own
	smallGroup = 1024          // groups up to this size are sorted instead
)

// histogram is scratch for clipRange; it lives on the caller's stack.
type histogram struct {
	// l1 holds four interleaved copies of the coarse histogram: runs of
	// equal keys (ReLU zeros) would otherwise serialise on one counter.
	l1     [4][maxBins]uint32
	lo, hi [maxBins]uint32
	small  [smallGroup]float32
}

// clipRange returns the quantisation range for a clip percentile p: the
// [100-p, p] percentiles of g (nearest rank), widened to include 0. It also
// returns bounds on g's values (exact for small groups) and whether they are
// all finite.
//
// Groups up to smallGroup values are sorted. Larger ones use radix selection
// on the order-preserving keys, two integer passes with no sort and no
// allocation: a histogram of the top 9 or 10 key bits finds the bin holding
// each rank (and any NaN or Inf, whose bins hold nothing else), and a second
// pass histograms the next bits inside just those two bins. The result is
// the sub-bin's outer edge: it overshoots the exact percentile by less than
// 2^-9 of its value and never clips more than asked. A side whose bin lies
// beyond 0 is not refined, since widening to 0 decides it.
func clipRange(g group, p float64, h *histogram) (lo, hi, mn, mx float32, finite bool) {
	n := g.len()
	khi := int(math.Ceil(p/100*float64(n))) - 1
	khi = min(max(khi, 0), n-1)
	klo := n - 1 - khi
	if n <= smallGroup {
		mn, mx, finite = minMax(g)
		if !finite || khi == n-1 {
			return min(mn, 0), max(mx, 0), mn, mx, finite
		}
		s := h.small[:0]
		for k := range g.count {
			s = append(s, g.run(k)...)
		}
		slices.Sort(s)
		return min(s[klo], 0), max(s[khi], 0), mn, mx, true
	}

	d := uint(max(min(bits.Len(uint(n))-2, maxDigit), minDigit))
	nb := 1 << d
	mask := uint32(nb - 1)
	s1, s2 := 32-d, 32-2*d
	h0, h1, h2, h3 := h.l1[0][:nb], h.l1[1][:nb], h.l1[2][:nb], h.l1[3][:nb]
	clear(h0)
	clear(h1)
	clear(h2)
	clear(h3)
	for k := range g.count {
		r := g.run(k)
		i := 0
		for ; i+4 <= len(r); i += 4 {
			q := r[i : i+4 : i+4]
			h0[ukey(q[0])>>s1&mask]++
			h1[ukey(q[1])>>s1&mask]++
			h2[ukey(q[2])>>s1&mask]++
			h3[ukey(q[3])>>s1&mask]++
		}
		for ; i < len(r); i++ {
			h0[ukey(r[i])>>s1&mask]++
		}
	}
	first, last := -1, 0
	for i := range h0 {
		h0[i] += h1[i] + h2[i] + h3[i]
		if h0[i] != 0 {
			if first < 0 {
				first = i
			}
			last = i
		}
	}
	// With at least 9 key bits per bin, NaN and ±Inf share no bin with a
	// finite value: ukey(+Inf) starts a bin and ukey(-Inf) ends one.
	if uint32(last) >= ukeyPosInf>>s1 || uint32(first) <= ukeyNegInf>>s1 {
		return 0, 0, 0, 0, false
	}
	mn = fromUkey(uint32(first) << s1)
	mx = fromUkey(uint32(last)<<s1 | (1<<s1 - 1))

	blo, restLo := findRank(h0, klo)
	bhi, restHi := findRank(h0, khi)
	// A bin whose keys are all >= ukey(+0) holds only values >= +0, so the
	// low percentile is >= 0 and lo is 0 after widening; likewise for hi.
	tlo, thi := uint32(blo), uint32(bhi)
	refineLo := tlo<<s1 < ukeyZero
	refineHi := thi<<s1|(1<<s1-1) >= ukeyZero
	if refineLo || refineHi {
		flo, fhi := h.lo[:nb], h.hi[:nb]
		clear(flo)
		clear(fhi)
		// Each bin is an interval of floats: compare floats first so most
		// values skip the key arithmetic. (-0 passes a test against +0, so
		// the key is checked too.)
		aLo, bLo := fromUkey(tlo<<s1), fromUkey(tlo<<s1|(1<<s1-1))
		aHi, bHi := fromUkey(thi<<s1), fromUkey(thi<<s1|(1<<s1-1))
		// Test the bound that few values pass first (values below the low
		// bin, above the high bin); a side not refined matches nothing.
		if !refineLo {
			bLo = float32(math.Inf(-1))
		}
		if !refineHi {
			aHi = float32(math.Inf(1))
		}
		for k := range g.count {
			for _, x := range g.run(k) {
				if x <= bLo && x >= aLo {
					if u := ukey(x); u>>s1 == tlo {
						flo[u>>s2&mask]++
					}
				}
				if x >= aHi && x <= bHi {
					if u := ukey(x); u>>s1 == thi {
						fhi[u>>s2&mask]++
					}
				}
			}
		}
		if refineLo {
			j, _ := findRank(flo, restLo)
			lo = fromUkey(tlo<<s1 | uint32(j)<<s2)
		}
		if refineHi {
			j, _ := findRank(fhi, restHi)
			hi = fromUkey(thi<<s1 | uint32(j)<<s2 | (1<<s2 - 1))
		}
	}
	return min(lo, 0), max(hi, 0), mn, mx, true
}

// findRank returns the bin holding the value of 0-based rank k and k's rank
// within that bin.
func findRank(h []uint32, k int) (bin, rest int) {
	for i, c := range h {
		if k < int(c) {
			return i, k
		}
		k -= int(c)
	}
	return len(h) - 1, 0 // not reached when the counts add up
}
