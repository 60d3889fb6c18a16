package bandit

import (
	"fmt"

	"github.com/dynoml/dyno/costmodel"
)

// ExpectedCosts writes the posterior-mean cost of every arm under
// conditions c into dst, one entry per arm of the model in
// costmodel.Model.Arms order. The controller plots it beside what the
// executors observed.
func (p *Dyno) ExpectedCosts(c costmodel.Conditions, dst []float64) error {
	if n := len(p.cm.Arms()); len(dst) != n {
		return fmt.Errorf("%w: expected costs: dst has %d entries for %d arms", ErrInvalid, len(dst), n)
	}
	if err := c.Validate(); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	for i := range dst {
		_, dst[i], _ = p.Predict(c, i)
	}
	return nil
}
