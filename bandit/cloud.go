package bandit

import "github.com/dynoml/dyno/costmodel"

// CloudOnly always sends the input (split 0) and runs the whole network in
// the cloud. Of the input's precisions it takes the one the static cost
// model prefers under the measured conditions among those whose calibrated
// accuracy meets the floor (float32 when no other is allowed).
type CloudOnly struct{ common }

var _ Policy = (*CloudOnly)(nil)

// NewCloudOnly builds the cloud-only baseline.
func NewCloudOnly(cm *costmodel.Model, cfg Config) (*CloudOnly, error) {
	c, err := newCommon(cm, &cfg)
	if err != nil {
		return nil, err
	}
	return &CloudOnly{common: c}, nil
}

// Name implements Policy.
func (p *CloudOnly) Name() string { return NameCloud }

// Choose implements Chooser.
func (p *CloudOnly) Choose(cond costmodel.Conditions, d *Decision) error {
	return p.chooseBest(cond, d, 0)
}

// MarshalBinary implements encoding.BinaryMarshaler.
func (p *CloudOnly) MarshalBinary() ([]byte, error) { return p.header(NameCloud).b, nil }

func init() {
	restorers[NameCloud] = func(c common, _ *decoder) (Policy, error) { return &CloudOnly{common: c}, nil }
}
