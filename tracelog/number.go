package tracelog

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/big"
	"math/bits"
	"strconv"
	"unsafe"
)

// Numbers are converted exactly, to the float64 strconv.ParseFloat gives,
// without strconv for nearly every number a trace holds:
//
//   - up to 15 significant digits and a decimal exponent within ±22: one
//     IEEE multiplication or division of two exact values (Clinger's fast
//     path);
//   - up to 19 digits and an exponent within ±wideExp: the mantissa times
//     a 128-bit power of ten, rounded by hand, unless the product is too
//     close to a rounding boundary to decide (Lemire's method, "Number
//     Parsing at a Gigabyte per Second", 2021);
//   - anything else, and the undecided, go to strconv.ParseFloat.
//
// The JSON grammar is checked here either way.

func skipSpace(b []byte, i int) int {
	if i < len(b) && b[i] > ' ' {
		return i
	}
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// exactPow10 holds the powers of ten a float64 represents exactly.
var exactPow10 = [...]float64{1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10,
	1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22}

// maxExactMantissa is the largest integer below which every integer is a
// float64 (2^53).
const maxExactMantissa = 1 << 53

// number is a JSON number's decimal parts: its value is
// ±mant x 10^exp10 when nd, the count of significant digits in mant, is at
// most 19 (beyond that mant is not exact).
type number struct {
	mant  uint64
	nd    int
	exp10 int
	neg   bool
}

// scanNumber checks the grammar of the JSON number at the start of b and
// returns its parts and its length.
func scanNumber(b []byte) (number, int, error) {
	var num number
	i := 0
	num.neg = i < len(b) && b[i] == '-'
	if num.neg {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && b[i] >= '1' && b[i] <= '9':
		start := i
		i, num.mant = digits(b, i, 0)
		num.nd = i - start
	default:
		return num, 0, errSyntax(b, i)
	}
	if i < len(b) && b[i] == '.' {
		i++
		start := i
		if num.mant == 0 {
			// Leading zeros of a fraction are not significant digits.
			for i < len(b) && b[i] == '0' {
				i++
			}
		}
		sig := i
		i, num.mant = digits(b, i, num.mant)
		if i == start {
			return num, 0, errSyntax(b, i)
		}
		num.nd += i - sig
		num.exp10 = start - i
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		eneg := false
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			eneg = b[i] == '-'
			i++
		}
		start := i
		e := 0
		for ; i < len(b) && b[i] >= '0' && b[i] <= '9'; i++ {
			if e < 10000 {
				e = e*10 + int(b[i]-'0')
			}
		}
		if i == start {
			return num, 0, errSyntax(b, i)
		}
		if eneg {
			e = -e
		}
		num.exp10 += e
	}
	return num, i, nil
}

// digits consumes the decimal digits of b from i, appending them to mant
// (which wraps past 19 digits: the caller counts them), and returns where
// they end and mant. Eight digits at a time are checked and converted
// with a few word operations.
func digits(b []byte, i int, mant uint64) (int, uint64) {
	for len(b)-i >= 8 {
		x := binary.LittleEndian.Uint64(b[i:])
		// Every byte is in '0'..'9' when its high nibble is 3 both before
		// and after adding 6.
		if x&0xF0F0F0F0F0F0F0F0 != 0x3030303030303030 || (x+0x0606060606060606)&0xF0F0F0F0F0F0F0F0 != 0x3030303030303030 {
			break
		}
		x -= 0x3030303030303030
		// Bytes 0, 2, 4, 6 become the two-digit numbers of each pair (the
		// first character is the lowest byte), then the four pairs are
		// combined in the high half of one product.
		x = x*10 + x>>8
		x = ((x&0x000000FF000000FF)*(100+1000000<<32) + (x>>16&0x000000FF000000FF)*(1+10000<<32)) >> 32
		mant = mant*100000000 + x
		i += 8
	}
	if len(b)-i >= 4 {
		x := binary.LittleEndian.Uint32(b[i:])
		if x&0xF0F0F0F0 == 0x30303030 && (x+0x06060606)&0xF0F0F0F0 == 0x30303030 {
			x -= 0x30303030
			x = x*10 + x>>8
			mant = mant*10000 + uint64(x&0xFF)*100 + uint64(x>>16&0xFF)
			i += 4
		}
	}
	for ; i < len(b); i++ {
		c := b[i] - '0'
		if c > 9 {
			break
		}
		mant = mant*10 + uint64(c)
	}
	return i, mant
}

// parseNumber parses the JSON number at the start of b and returns it and
// its length.
func parseNumber(b []byte) (float64, int, error) {
	num, n, err := scanNumber(b)
	if err != nil {
		return 0, 0, err
	}
	if num.nd <= 19 {
		if num.mant == 0 {
			if num.neg {
				return math.Copysign(0, -1), n, nil
			}
			return 0, n, nil
		}
		if num.mant < maxExactMantissa && num.exp10 >= -22 && num.exp10 <= 22 {
			v := float64(num.mant)
			if num.exp10 < 0 {
				v /= exactPow10[-num.exp10]
			} else {
				v *= exactPow10[num.exp10]
			}
			if num.neg {
				v = -v
			}
			return v, n, nil
		}
		if v, ok := wide(num); ok {
			return v, n, nil
		}
	}
	v, err := strconv.ParseFloat(unsafe.String(&b[0], n), 64)
	if err != nil {
		return 0, 0, fmt.Errorf("number %s is out of range", b[:n])
	}
	return v, n, nil
}

func errSyntax(b []byte, i int) error {
	if i >= len(b) {
		return fmt.Errorf("number ends early")
	}
	return fmt.Errorf("unexpected %q in a number", b[i])
}

// wideExp bounds the decimal exponents wide converts: every trace value
// (milliseconds, bytes, probabilities) is far inside it.
const wideExp = 40

// pow10x128 holds 10^q for q in [-wideExp, wideExp] as a 128-bit mantissa
// m (top bit set) and a binary exponent e, 10^q ~ m x 2^e: exact for q >= 0
// (5^40 needs 93 bits), rounded down for q < 0.
var pow10x128 = func() (t [2*wideExp + 1]struct {
	hi, lo uint64
	e      int
}) {
	for q := -wideExp; q <= wideExp; q++ {
		p := new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(abs(q))), nil)
		var m *big.Int
		var e int
		switch {
		case q >= 0 && p.BitLen() > 128:
			// Exact still: 10^q ends in q zero bits, more than are dropped.
			e = p.BitLen() - 128
			m = new(big.Int).Rsh(p, uint(e))
		case q >= 0:
			e = p.BitLen() - 128
			m = new(big.Int).Lsh(p, uint(-e))
		default:
			// floor(2^k / 10^-q) with k such that it has 128 bits.
			k := 127 + p.BitLen()
			m = new(big.Int).Div(new(big.Int).Lsh(big.NewInt(1), uint(k)), p)
			e = -k
		}
		if m.BitLen() != 128 {
			panic("tracelog: power-of-ten table")
		}
		words := new(big.Int).Rsh(m, 64)
		t[q+wideExp].hi = words.Uint64()
		t[q+wideExp].lo = new(big.Int).And(m, new(big.Int).SetUint64(math.MaxUint64)).Uint64()
		t[q+wideExp].e = e
	}
	return
}()

func abs(x int) int {
	if x < 0 {
		return -x
	}
	return x
}

// wide converts a nonzero mantissa of up to 19 digits exactly, or reports
// that it cannot decide.
func wide(num number) (float64, bool) {
	if num.mant == 0 || num.exp10 < -wideExp || num.exp10 > wideExp {
		return 0, false
	}
	p := &pow10x128[num.exp10+wideExp]
	l := bits.LeadingZeros64(num.mant)
	m := num.mant << l
	// The 192-bit product x2:x1:x0 of m and the table's mantissa. The true
	// product lies in [x, x + m): the table is at most one unit low, and
	// exact for q >= 0.
	h1, x0 := bits.Mul64(m, p.lo)
	x2, l2 := bits.Mul64(m, p.hi)
	x1, c := bits.Add64(l2, h1, 0)
	x2 += c
	// value = x x 2^(e - l); x2 has its top bit at 63 or 62.
	exp := p.e - l
	if x2>>63 == 0 {
		x2 = x2<<1 | x1>>63
		x1 = x1<<1 | x0>>63
		x0 <<= 1
		exp--
	}
	// The 53 bits kept are x2's top 53; below them, 11 bits of x2, then x1
	// and x0, and bit 10 of x2 is the half point. The error (under 2^65
	// after the shift) can change the rounding only when every bit from the
	// half point down to bit 65 is one: strconv settles those. A product
	// exactly on the half point is a tie, rounded to even, where the table
	// is exact; where it is low, the true value is above the half point.
	const low10 = 1<<10 - 1
	if x2&low10 == low10 && x1 >= math.MaxUint64-1 {
		return 0, false
	}
	mant := x2 >> 11
	tie := num.exp10 >= 0 && x2&(1<<11-1) == 1<<10 && x1 == 0 && x0 == 0
	if x2&(1<<10) != 0 && (!tie || mant&1 == 1) {
		mant++
		if mant == 1<<53 {
			mant >>= 1
			exp++
		}
	}
	// value = mant x 2^(exp + 139), mant in [2^52, 2^53).
	biased := exp + 139 + 52 + 1023
	if biased <= 0 || biased >= 0x7FF {
		return 0, false
	}
	f := math.Float64frombits(uint64(biased)<<52 | mant&(1<<52-1))
	if num.neg {
		f = -f
	}
	return f, true
}
