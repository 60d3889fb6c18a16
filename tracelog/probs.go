package tracelog

import (
	"encoding/binary"
	"fmt"
	"math"
	"strconv"
	"unsafe"
)

// Probs is a logged distribution over arms. It is the longest field of a
// record (one number per arm) and decoding it dominated reading a log, so it
// has its own parser: numbers of at most 15 significant digits with a small
// decimal exponent, which is what the writers produce for probabilities, are
// converted exactly with one IEEE multiplication or division (Clinger's fast
// path, the same value strconv.ParseFloat gives); any other number goes to
// strconv.ParseFloat. The JSON grammar is checked strictly either way.
type Probs []float64

// MarshalJSON writes each probability with the shortest decimal that reads
// back as the same float32: nine significant digits at most, about half the
// seventeen a float64 can need. That is far finer than any use of the
// distribution (its sum and its entry for the chosen arm are checked to
// 1e-6; the importance weights use the record's propensity, written in
// full), it keeps logs smaller, and it keeps every entry on the exact fast
// path of the parser.
func (p Probs) MarshalJSON() ([]byte, error) {
	if p == nil {
		return []byte("null"), nil
	}
	out := make([]byte, 0, 2+11*len(p))
	out = append(out, '[')
	for i, v := range p {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return nil, fmt.Errorf("probs[%d]: %g is not a probability", i, v)
		}
		if i > 0 {
			out = append(out, ',')
		}
		out = strconv.AppendFloat(out, float64(float32(v)), 'g', -1, 32)
	}
	return append(out, ']'), nil
}

// UnmarshalJSON parses a JSON array of numbers, or null.
func (p *Probs) UnmarshalJSON(b []byte) error {
	d := lexer{b: b}
	if err := d.probs(p); err != nil {
		return err
	}
	if d.space(); d.i != len(b) {
		return d.errorf("unexpected %s after the array", d.what())
	}
	return nil
}

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
// its length. A number the fast path cannot convert exactly is handed to
// strconv.ParseFloat after its grammar has been checked.
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
