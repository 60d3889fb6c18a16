package costmodel

import (
	"fmt"
	"math"
)

// Arm is one choice: run blocks 1..Split on the device and send the tensor
// crossing the split at Bits precision. Split 0 is cloud-only (the input is
// sent); Split K is device-only (nothing is sent, Bits is 32).
type Arm struct {
	Split int `json:"split"`
	Bits  int `json:"bits"`
}

func (a Arm) String() string { return fmt.Sprintf("s%d/b%d", a.Split, a.Bits) }

// Conditions is what an executor measures before a request. The zero value
// of each slowdown means nominal (1), so a JSON document may omit them.
type Conditions struct {
	// BandwidthMbps is the device-to-cloud throughput estimate, Mbit/s.
	BandwidthMbps float64 `json:"bandwidth_mbps"`
	// RTTMs is the round-trip time, ms.
	RTTMs float64 `json:"rtt_ms"`
	// CloudQueueMs is the queueing delay the cloud reported last, ms.
	CloudQueueMs float64 `json:"cloud_queue_ms,omitempty"`
	// CloudSlowdown multiplies the cloud's profiled block times (load).
	CloudSlowdown float64 `json:"cloud_slowdown,omitempty"`
	// DeviceSlowdown multiplies the device's profiled block times (thermal
	// throttling, other apps).
	DeviceSlowdown float64 `json:"device_slowdown,omitempty"`
}

// Validate names the first bad field.
func (c Conditions) Validate() error {
	bad := func(field string, err error) error {
		return fmt.Errorf("%w: conditions: %s: %v", ErrInvalid, field, err)
	}
	if err := finiteNonNegative(c.BandwidthMbps); err != nil {
		return bad("bandwidth_mbps", err)
	}
	if c.BandwidthMbps == 0 {
		return bad("bandwidth_mbps", fmt.Errorf("zero: a link with no bandwidth cannot carry a split"))
	}
	for _, f := range []struct {
		name string
		v    float64
	}{{"rtt_ms", c.RTTMs}, {"cloud_queue_ms", c.CloudQueueMs}, {"cloud_slowdown", c.CloudSlowdown}, {"device_slowdown", c.DeviceSlowdown}} {
		if err := finiteNonNegative(f.v); err != nil {
			return bad(f.name, err)
		}
	}
	return nil
}

// Slowdowns returns the device and cloud slowdowns, a zero one (not
// reported) read as nominal, 1.
func (c Conditions) Slowdowns() (device, cloud float64) {
	return orOne(c.DeviceSlowdown), orOne(c.CloudSlowdown)
}

func orOne(v float64) float64 {
	if v == 0 {
		return 1
	}
	return v
}

// Stages is the cost of one request through one arm, stage by stage: the
// cost model's prediction, or what an executor measured.
type Stages struct {
	Arm Arm `json:"arm"`
	// DeviceMs is the compute time of blocks 1..s on the device.
	DeviceMs float64 `json:"device_ms"`
	// PackMs is quantising and packing the tensor at the split.
	PackMs float64 `json:"pack_ms"`
	// Bytes is what crosses the link.
	Bytes float64 `json:"bytes"`
	// NetworkMs is the transfer time: how long the link is busy with the
	// request (what limits a pipelined stream).
	NetworkMs float64 `json:"network_ms"`
	// RTTMs is the round trip of the request and its result (it adds to
	// latency but does not occupy the link).
	RTTMs        float64 `json:"rtt_ms"`
	CloudQueueMs float64 `json:"cloud_queue_ms"`
	CloudMs      float64 `json:"cloud_ms"`
	UnpackMs     float64 `json:"unpack_ms"`
	// Accuracy is the calibrated accuracy of the arm, in [0, 1].
	Accuracy float64 `json:"accuracy"`
}

// Device is the device stage D (compute plus packing).
func (s Stages) Device() float64 { return s.DeviceMs + s.PackMs }

// Network is the network stage N of one request: transfer plus round trip.
func (s Stages) Network() float64 { return s.NetworkMs + s.RTTMs }

// Cloud is the cloud stage C (queue, unpacking, compute).
func (s Stages) Cloud() float64 { return s.CloudQueueMs + s.UnpackMs + s.CloudMs }

// LatencyMs is the end-to-end latency of one request, D + N + C.
func (s Stages) LatencyMs() float64 { return s.Device() + s.Network() + s.Cloud() }

// BottleneckMs is the slowest stage of a pipelined stream, max(D, N, C),
// where the network stage counts only the transfer: requests in flight
// overlap their round trips.
func (s Stages) BottleneckMs() float64 { return bottleneck(s.Device(), s.NetworkMs, s.Cloud()) }

// ThroughputRPS is the request rate of a pipelined stream, 1 / max(D, N, C);
// zero when every stage takes no time (it would be unbounded).
func (s Stages) ThroughputRPS() float64 {
	b := s.BottleneckMs()
	if b <= 0 {
		return 0
	}
	return 1000 / b
}

// CloudGPUMs is the GPU time the request costs the cloud (compute and
// unpacking; queueing uses none).
func (s Stages) CloudGPUMs() float64 { return s.CloudMs + s.UnpackMs }

// ValidateMeasured names the first stage time or byte count of measured
// stages that is not a finite non-negative number (an executor's report,
// a logged trace). The field names are the JSON ones.
func (s Stages) ValidateMeasured() error {
	for _, f := range []struct {
		name string
		v    float64
	}{
		{"device_ms", s.DeviceMs}, {"pack_ms", s.PackMs}, {"bytes", s.Bytes}, {"network_ms", s.NetworkMs},
		{"rtt_ms", s.RTTMs}, {"cloud_queue_ms", s.CloudQueueMs}, {"cloud_ms", s.CloudMs}, {"unpack_ms", s.UnpackMs},
	} {
		if math.IsNaN(f.v) || math.IsInf(f.v, 0) || f.v < 0 {
			return fmt.Errorf("%s: %g is not a finite non-negative number", f.name, f.v)
		}
	}
	return nil
}
