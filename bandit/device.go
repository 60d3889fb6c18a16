package bandit

import (
	"fmt"

	"github.com/dynoml/dyno/costmodel"
)

// DeviceOnly always runs the whole network on the device: the arm (K, 32).
type DeviceOnly struct{ common }

var _ Policy = (*DeviceOnly)(nil)

// NewDeviceOnly builds the device-only baseline. The device-only arm must
// not be masked.
func NewDeviceOnly(cm *costmodel.Model, cfg Config) (*DeviceOnly, error) {
	c, err := newCommon(cm, &cfg)
	if err != nil {
		return nil, err
	}
	return &DeviceOnly{common: c}, nil
}

// Name implements Policy.
func (p *DeviceOnly) Name() string { return NameDevice }

// Choose implements Chooser.
func (p *DeviceOnly) Choose(cond costmodel.Conditions, d *Decision) error {
	if err := checkConditions(cond); err != nil {
		return err
	}
	p.reset(d)
	if p.pin >= 0 {
		p.certain(d, p.pin)
		return nil
	}
	i := len(p.cm.Arms()) - 1 // device-only is last in Arms order
	if !p.tableEligible(i) {
		return fmt.Errorf("%w: the device-only arm is masked or below the floor", ErrNoEligibleArm)
	}
	p.certain(d, i)
	return nil
}

// MarshalBinary implements encoding.BinaryMarshaler.
func (p *DeviceOnly) MarshalBinary() ([]byte, error) { return p.header(NameDevice).b, nil }

func init() {
	restorers[NameDevice] = func(c common, _ *decoder) (Policy, error) { return &DeviceOnly{common: c}, nil }
}
