package tracelog

import (
	"fmt"
	"math"
	"strconv"
)

// Probs is a logged distribution over arms, the longest field of a record
// (one number per arm). The record decoder reads it with a loop of its own
// (see lexer.probs).
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
