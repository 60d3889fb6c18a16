package costmodel

import (
	"errors"
	"fmt"
	"math"
	"path/filepath"

	"github.com/dynoml/dyno/model"
)

// PackHeaderBytes approximates the self-describing header the packing puts
// in front of a tensor (shape, scheme, scale, checksum).
const PackHeaderBytes = 64

// ErrNoEligibleArm is returned when the mask and the accuracy floor leave no
// arm to choose.
var ErrNoEligibleArm = errors.New("costmodel: no eligible arm")

// Model is the cost model of one model on one device class against one
// cloud: the manifest, both profiles and the accuracy table, with the
// condition-independent part of every arm precomputed. It is immutable and
// safe for concurrent use.
type Model struct {
	Manifest *model.Manifest
	Device   *Profile
	Cloud    *Profile
	Accuracy *AccuracyTable

	arms  []Arm
	bases []Base
	index map[Arm]int
}

// Base is the part of an arm's prediction that does not depend on the
// conditions: the profiled times at nominal speed and the bytes sent.
type Base struct {
	Arm       Arm
	DeviceMs  float64
	PackMs    float64
	Bytes     float64
	CloudMs   float64
	UnpackMs  float64
	Accuracy  float64
	Agreement float64
	// Calibrated is false when the accuracy table has no entry for the arm.
	Calibrated bool
}

// Sends reports whether the arm sends anything (every arm but device-only).
func (b Base) Sends() bool { return b.Bytes > 0 }

// New builds the cost model and checks that its parts agree: the same model
// name, one profile entry per block, a device and a cloud profile.
func New(m *model.Manifest, device, cloud *Profile, acc *AccuracyTable) (*Model, error) {
	if m == nil || device == nil || cloud == nil || acc == nil {
		return nil, fmt.Errorf("%w: cost model needs a manifest, a device profile, a cloud profile and an accuracy table", ErrInvalid)
	}
	if err := m.Validate(); err != nil {
		return nil, err
	}
	k := m.K()
	for _, p := range []*Profile{device, cloud} {
		if err := p.Validate(k); err != nil {
			return nil, err
		}
		if p.Model != m.Name {
			return nil, fmt.Errorf("%w: profile %s/%s: model: %q, the manifest is %q", ErrInvalid, p.Model, p.DeviceClass, p.Model, m.Name)
		}
	}
	if device.Role != RoleDevice {
		return nil, fmt.Errorf("%w: profile %s: role: %q where a device profile is needed", ErrInvalid, device.DeviceClass, device.Role)
	}
	if cloud.Role != RoleCloud {
		return nil, fmt.Errorf("%w: profile %s: role: %q where a cloud profile is needed", ErrInvalid, cloud.DeviceClass, cloud.Role)
	}
	if err := acc.Validate(k); err != nil {
		return nil, err
	}
	if acc.Model != m.Name {
		return nil, fmt.Errorf("%w: accuracy table: model: %q, the manifest is %q", ErrInvalid, acc.Model, m.Name)
	}
	cm := &Model{Manifest: m, Device: device, Cloud: cloud, Accuracy: acc, index: map[Arm]int{}}
	for s := 0; s <= k; s++ {
		bits := m.AllowedBits
		if s == k {
			bits = []int{32}
		}
		for _, b := range bits {
			cm.add(Arm{Split: s, Bits: b})
		}
	}
	return cm, nil
}

func (cm *Model) add(a Arm) {
	m, k := cm.Manifest, cm.Manifest.K()
	b := Base{Arm: a}
	for i := 0; i < a.Split; i++ {
		b.DeviceMs += cm.Device.Blocks[i].MedianMs
	}
	for i := a.Split; i < k; i++ {
		b.CloudMs += cm.Cloud.Blocks[i].MedianMs
	}
	if a.Split < k {
		n := float64(m.Elements(a.Split))
		e, ok := cm.Accuracy.lookup(a, k)
		rho := 1.0
		if ok {
			rho = e.CompressionRatio
		}
		b.Bytes = math.Ceil(n*float64(a.Bits)/8)*rho + PackHeaderBytes
		b.PackMs = n * cm.Device.packNs() / 1e6
		b.UnpackMs = n * cm.Cloud.packNs() / 1e6
	}
	if e, ok := cm.Accuracy.lookup(a, k); ok {
		b.Accuracy, b.Agreement, b.Calibrated = e.Accuracy, e.Agreement, true
	}
	cm.index[a] = len(cm.arms)
	cm.arms = append(cm.arms, a)
	cm.bases = append(cm.bases, b)
}

// Arms lists every arm in a fixed order: splits ascending, bits in the
// manifest's order, device-only last. The slice must not be modified.
func (cm *Model) Arms() []Arm { return cm.arms }

// Bases returns the condition-independent part of every arm, in Arms order.
// The slice must not be modified.
func (cm *Model) Bases() []Base { return cm.bases }

// Index returns the position of a in Arms, or false if the model has no
// such arm.
func (cm *Model) Index(a Arm) (int, bool) {
	i, ok := cm.index[a]
	return i, ok
}

// Predict returns the predicted stages of arm i under conditions c.
func (cm *Model) Predict(i int, c Conditions) Stages {
	return cm.bases[i].Predict(c)
}

// Predict applies conditions to the condition-independent part.
func (b Base) Predict(c Conditions) Stages {
	dev, pack, transfer, rtt, queue, cloud, unpack := b.terms(&c)
	return Stages{Arm: b.Arm, DeviceMs: dev, PackMs: pack, Bytes: b.Bytes, NetworkMs: transfer, RTTMs: rtt,
		CloudQueueMs: queue, CloudMs: cloud, UnpackMs: unpack, Accuracy: b.Accuracy}
}

// PredictCost is o.Cost(b.Predict(c)), to the last bit, without building
// the Stages: the static scheduler evaluates it for every arm of every
// request, and a Stages built and read back field by field cost ten times
// the arithmetic.
func (o *Objective) PredictCost(b *Base, c *Conditions) float64 {
	dev, pack, transfer, rtt, queue, cloud, unpack := b.terms(c)
	return o.cost(dev+pack, transfer, rtt, queue+unpack+cloud, cloud+unpack, b.Bytes)
}

// terms are the arm's stage times under c: device compute and packing
// scale with the device's slowdown, unpacking and compute with the
// cloud's, and an arm that sends nothing has no network or cloud-side
// overhead.
func (b *Base) terms(c *Conditions) (dev, pack, transfer, rtt, queue, cloud, unpack float64) {
	ds, cs := c.Slowdowns()
	dev, cloud = b.DeviceMs*ds, b.CloudMs*cs
	if b.Sends() {
		pack = b.PackMs * ds
		transfer = TransferMs(b.Bytes, c.BandwidthMbps)
		rtt, queue = c.RTTMs, c.CloudQueueMs
		unpack = b.UnpackMs * cs
	}
	return
}

// TransferMs is the time to send bytes at mbps Mbit/s.
func TransferMs(bytes, mbps float64) float64 {
	return bytes * 8 / (mbps * 1e3)
}

// LoadDir builds the cost model of a model folder as make models and
// examples/ lay it out: model.json, accuracy.json and
// profiles/<class>.json for the device class and the cloud class.
func LoadDir(dir, deviceClass, cloudClass string) (*Model, error) {
	return LoadFiles(filepath.Join(dir, "model.json"), filepath.Join(dir, "accuracy.json"),
		filepath.Join(dir, "profiles", deviceClass+".json"), filepath.Join(dir, "profiles", cloudClass+".json"))
}

// LoadFiles builds a cost model from its four files: the manifest, the
// accuracy table, the device profile and the cloud profile.
func LoadFiles(manifest, accuracy, deviceProfile, cloudProfile string) (*Model, error) {
	m, err := model.LoadManifest(manifest)
	if err != nil {
		return nil, err
	}
	acc, err := LoadAccuracyTable(accuracy)
	if err != nil {
		return nil, err
	}
	dev, err := LoadProfile(deviceProfile)
	if err != nil {
		return nil, err
	}
	cl, err := LoadProfile(cloudProfile)
	if err != nil {
		return nil, err
	}
	return New(m, dev, cl, acc)
}
