package costmodel_test

import (
	"errors"
	"math"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dynoml/dyno/costmodel"
	"github.com/dynoml/dyno/model"
)

// tiny is a two-block model small enough to compute by hand: input 1000
// elements, block 1 outputs 500, block 2 outputs 10.
func tiny(t testing.TB) (*model.Manifest, *costmodel.Profile, *costmodel.Profile, *costmodel.AccuracyTable) {
	t.Helper()
	m := &model.Manifest{
		Version: model.ManifestVersion, Name: "tiny",
		Input:       model.NewTensor("x", 1, 1000),
		Blocks:      []model.Block{{Name: "b1", Output: model.NewTensor("h", 1, 500), FLOPs: 1e6}, {Name: "b2", Output: model.NewTensor("y", 1, 10), FLOPs: 2e6}},
		AllowedBits: []int{32, 16, 8, 4},
	}
	dev := &costmodel.Profile{Version: 1, Model: "tiny", DeviceClass: "dev", Role: costmodel.RoleDevice, Host: "test",
		Blocks: []costmodel.BlockTiming{{MedianMs: 10, P95Ms: 12}, {MedianMs: 20, P95Ms: 25}}, PackNsPerElement: 4}
	cloud := &costmodel.Profile{Version: 1, Model: "tiny", DeviceClass: "gpu", Role: costmodel.RoleCloud, Host: "test",
		Blocks: []costmodel.BlockTiming{{MedianMs: 1, P95Ms: 1}, {MedianMs: 2, P95Ms: 2}}, PackNsPerElement: 2}
	acc := &costmodel.AccuracyTable{Version: 1, Model: "tiny", Metric: "label-accuracy", Baseline: 0.9, Entries: []costmodel.AccuracyEntry{
		{Split: 0, Bits: 16, Accuracy: 0.9, Agreement: 1},
		{Split: 0, Bits: 8, Accuracy: 0.89, Agreement: 0.98},
		{Split: 0, Bits: 4, Accuracy: 0.70, Agreement: 0.75},
		{Split: 1, Bits: 16, Accuracy: 0.9, Agreement: 1},
		{Split: 1, Bits: 8, Accuracy: 0.895, Agreement: 0.99, CompressionRatio: 0.5},
		{Split: 1, Bits: 4, Accuracy: 0.85, Agreement: 0.9},
	}}
	return m, dev, cloud, acc
}

func tinyModel(t testing.TB) *costmodel.Model {
	t.Helper()
	cm, err := costmodel.New(tiny(t))
	if err != nil {
		t.Fatal(err)
	}
	return cm
}

func index(t testing.TB, cm *costmodel.Model, s, b int) int {
	t.Helper()
	i, ok := cm.Index(costmodel.Arm{Split: s, Bits: b})
	if !ok {
		t.Fatalf("no arm s%d/b%d", s, b)
	}
	return i
}

func near(a, b float64) bool { return math.Abs(a-b) < 1e-9 }

func TestArmsEnumeration(t *testing.T) {
	cm := tinyModel(t)
	// Splits 0 and 1 at four precisions each, plus the one device-only arm.
	if got := len(cm.Arms()); got != 9 {
		t.Fatalf("got %d arms, want 9: %v", got, cm.Arms())
	}
	if last := cm.Arms()[8]; last != (costmodel.Arm{Split: 2, Bits: 32}) {
		t.Fatalf("last arm %v, want device-only s2/b32", last)
	}
}

func TestPredictHandComputed(t *testing.T) {
	cm := tinyModel(t)
	c := costmodel.Conditions{BandwidthMbps: 8, RTTMs: 10}
	cases := []struct {
		name                                   string
		split, bits                            int
		dev, pack, bytes, xfer, rtt, cloud, up float64
		latency, bottleneck                    float64
	}{
		{
			// 500 elements at 8 bits = 500 bytes, compressed to half, plus
			// the 64-byte header; 314 bytes at 8 Mbit/s = 0.314 ms.
			name: "mid split 8 bits", split: 1, bits: 8,
			dev: 10, pack: 500 * 4e-6, bytes: 314, xfer: 0.314, rtt: 10, cloud: 2, up: 500 * 2e-6,
			latency: 10.002 + 0.314 + 10 + 2.001, bottleneck: 10.002,
		},
		{
			// The input, 1000 float32 = 4000 bytes + 64, is 4.064 ms.
			name: "cloud-only raw", split: 0, bits: 32,
			pack: 1000 * 4e-6, bytes: 4064, xfer: 4.064, rtt: 10, cloud: 3, up: 1000 * 2e-6,
			latency: 0.004 + 4.064 + 10 + 3.002, bottleneck: 4.064,
		},
		{
			// 1000 elements at 4 bits = 500 bytes + 64.
			name: "cloud-only 4 bits", split: 0, bits: 4,
			pack: 0.004, bytes: 564, xfer: 0.564, rtt: 10, cloud: 3, up: 0.002,
			latency: 0.004 + 0.564 + 10 + 3.002, bottleneck: 3.002,
		},
		{
			name: "device-only", split: 2, bits: 32,
			dev: 30, latency: 30, bottleneck: 30,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := cm.Predict(index(t, cm, tc.split, tc.bits), c)
			got := []float64{s.DeviceMs, s.PackMs, s.Bytes, s.NetworkMs, s.RTTMs, s.CloudMs, s.UnpackMs, s.LatencyMs(), s.BottleneckMs()}
			want := []float64{tc.dev, tc.pack, tc.bytes, tc.xfer, tc.rtt, tc.cloud, tc.up, tc.latency, tc.bottleneck}
			names := []string{"device", "pack", "bytes", "transfer", "rtt", "cloud", "unpack", "latency", "bottleneck"}
			for i := range got {
				if !near(got[i], want[i]) {
					t.Errorf("%s = %g, want %g", names[i], got[i], want[i])
				}
			}
			if !near(s.ThroughputRPS(), 1000/tc.bottleneck) {
				t.Errorf("throughput = %g, want %g", s.ThroughputRPS(), 1000/tc.bottleneck)
			}
		})
	}
}

func TestSlowdownsScaleTheirStage(t *testing.T) {
	cm := tinyModel(t)
	i := index(t, cm, 1, 8)
	base := cm.Predict(i, costmodel.Conditions{BandwidthMbps: 8, RTTMs: 10})
	slow := cm.Predict(i, costmodel.Conditions{BandwidthMbps: 8, RTTMs: 10, DeviceSlowdown: 2, CloudSlowdown: 3, CloudQueueMs: 5})
	if !near(slow.DeviceMs, 2*base.DeviceMs) || !near(slow.PackMs, 2*base.PackMs) {
		t.Errorf("device slowdown 2: device %g pack %g from %g %g", slow.DeviceMs, slow.PackMs, base.DeviceMs, base.PackMs)
	}
	if !near(slow.CloudMs, 3*base.CloudMs) || !near(slow.CloudQueueMs, 5) {
		t.Errorf("cloud slowdown 3, queue 5: cloud %g queue %g", slow.CloudMs, slow.CloudQueueMs)
	}
	if !near(slow.NetworkMs, base.NetworkMs) {
		t.Errorf("slowdowns changed the network stage: %g vs %g", slow.NetworkMs, base.NetworkMs)
	}
}

// exampleModels loads every shipped example (model x device class).
func exampleModels(t *testing.T) map[string]*costmodel.Model {
	t.Helper()
	out := map[string]*costmodel.Model{}
	for _, name := range []string{"resnet50", "mobilenetv2"} {
		dir := filepath.Join("..", "examples", name)
		for _, class := range []string{"jetson-xavier-nx", "phone-high", "phone-low"} {
			cm, err := costmodel.LoadDir(dir, class, "cloud-t4")
			if err != nil {
				t.Fatal(err)
			}
			out[name+"/"+class] = cm
		}
	}
	return out
}

func randomConditions(r *rand.Rand) costmodel.Conditions {
	return costmodel.Conditions{
		BandwidthMbps:  0.1 + 100*r.Float64(),
		RTTMs:          200 * r.Float64(),
		CloudQueueMs:   20 * r.Float64(),
		DeviceSlowdown: 0.5 + 2*r.Float64(),
		CloudSlowdown:  0.5 + 2*r.Float64(),
	}
}

func TestPropertyMoreBandwidthNeverSlower(t *testing.T) {
	seed := uint64(20261128)
	r := rand.New(rand.NewPCG(seed, 1))
	for name, cm := range exampleModels(t) {
		for trial := 0; trial < 200; trial++ {
			c := randomConditions(r)
			more := c
			more.BandwidthMbps *= 1 + 10*r.Float64()
			for i := range cm.Arms() {
				a, b := cm.Predict(i, c), cm.Predict(i, more)
				if b.LatencyMs() > a.LatencyMs()+1e-9 {
					t.Fatalf("seed %d, %s arm %v: latency %g at %g Mbit/s but %g at %g Mbit/s",
						seed, name, cm.Arms()[i], a.LatencyMs(), c.BandwidthMbps, b.LatencyMs(), more.BandwidthMbps)
				}
			}
		}
	}
}

func TestPropertyDeviceOnlyIgnoresTheLink(t *testing.T) {
	seed := uint64(7)
	r := rand.New(rand.NewPCG(seed, 2))
	for name, cm := range exampleModels(t) {
		k := cm.Manifest.K()
		i := index(t, cm, k, 32)
		c := randomConditions(r)
		want := cm.Predict(i, c)
		for trial := 0; trial < 100; trial++ {
			other := randomConditions(r)
			other.DeviceSlowdown = c.DeviceSlowdown
			got := cm.Predict(i, other)
			if got != want {
				t.Fatalf("seed %d, %s: device-only stages changed with the link: %+v vs %+v", seed, name, got, want)
			}
			if got.Bytes != 0 || got.Network() != 0 || got.Cloud() != 0 {
				t.Fatalf("%s: device-only sends or uses the cloud: %+v", name, got)
			}
		}
	}
}

func TestPropertyTighterFloorNeverAddsArms(t *testing.T) {
	for name, cm := range exampleModels(t) {
		prev := len(cm.Arms()) + 1
		for floor := 0.0; floor <= 1.0; floor += 0.01 {
			o := costmodel.Objective{Kind: costmodel.MinLatency, AccuracyFloor: floor}
			n := 0
			for i := range cm.Arms() {
				if ok, _ := cm.Eligible(i, o, nil); ok {
					n++
				}
			}
			if n > prev {
				t.Fatalf("%s: floor %.2f allows %d arms, a lower floor allowed %d", name, floor, n, prev)
			}
			prev = n
		}
		if prev != 0 {
			t.Errorf("%s: floor 1.0 still allows %d arms", name, prev)
		}
	}
}

func TestObjectives(t *testing.T) {
	cm := tinyModel(t)
	fast := costmodel.Conditions{BandwidthMbps: 100, RTTMs: 1}
	slow := costmodel.Conditions{BandwidthMbps: 0.01, RTTMs: 1}
	cases := []struct {
		name string
		o    costmodel.Objective
		c    costmodel.Conditions
		want costmodel.Arm
	}{
		// Fast link: cloud-only at 16 bits (2064 bytes) beats 32 bits and
		// the device's 30 ms; 8 and 4 bits are below the 0.895 floor at
		// split 0.
		{"min-latency fast link", costmodel.Objective{Kind: costmodel.MinLatency, AccuracyFloor: 0.895}, fast, costmodel.Arm{Split: 0, Bits: 4 * 4}},
		// Starved link: nothing beats keeping the data on the device.
		{"min-latency starved link", costmodel.Objective{Kind: costmodel.MinLatency}, slow, costmodel.Arm{Split: 2, Bits: 32}},
		// No floor: cloud-only at 4 bits sends least.
		{"min-latency no floor", costmodel.Objective{Kind: costmodel.MinLatency}, fast, costmodel.Arm{Split: 0, Bits: 4}},
		// Throughput: the bottleneck of cloud-only 4 bits is the cloud's
		// 3 ms; of split 1 it is the device's 10 ms.
		{"max-throughput", costmodel.Objective{Kind: costmodel.MaxThroughput}, fast, costmodel.Arm{Split: 0, Bits: 4}},
		// Cloud cost with a loose SLO: the device does everything.
		{"min-cloud-cost loose SLO", costmodel.Objective{Kind: costmodel.MinCloudCost, LatencySLOMs: 100}, fast, costmodel.Arm{Split: 2, Bits: 32}},
		// SLO of 20 ms rules out device-only (30 ms); split 1 uses 2 ms of
		// GPU against 3 ms for cloud-only; its 8 bits compress to the
		// size of 4 bits, and the tie goes to the earlier (wider) arm.
		{"min-cloud-cost tight SLO", costmodel.Objective{Kind: costmodel.MinCloudCost, LatencySLOMs: 20, AccuracyFloor: 0.85}, fast, costmodel.Arm{Split: 1, Bits: 8}},
		// Bytes only: device-only sends nothing.
		{"weighted bytes", costmodel.Objective{Kind: costmodel.Weighted, Weights: costmodel.Weights{KB: 1}}, fast, costmodel.Arm{Split: 2, Bits: 32}},
		// Latency only: the same as min-latency.
		{"weighted latency", costmodel.Objective{Kind: costmodel.Weighted, Weights: costmodel.Weights{LatencyMs: 1}}, fast, costmodel.Arm{Split: 0, Bits: 4}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ch, err := cm.Choose(tc.c, tc.o, nil)
			if err != nil {
				t.Fatal(err)
			}
			if ch.Best != tc.want {
				t.Fatalf("chose %v, want %v; ranking %+v", ch.Best, tc.want, ch.Ranked[:3])
			}
			for i := 1; i < len(ch.Ranked); i++ {
				a, b := ch.Ranked[i-1], ch.Ranked[i]
				if a.Excluded == "" && b.Excluded == "" && a.Cost > b.Cost {
					t.Fatalf("ranking not sorted at %d: %g > %g", i, a.Cost, b.Cost)
				}
				if a.Excluded != "" && b.Excluded == "" {
					t.Fatalf("excluded arm %v ranked before eligible %v", a.Arm, b.Arm)
				}
			}
		})
	}
}

func TestChooseReasonsAndMask(t *testing.T) {
	cm := tinyModel(t)
	allowed := make([]bool, len(cm.Arms()))
	for i := range allowed {
		allowed[i] = true
	}
	allowed[index(t, cm, 2, 32)] = false
	ch, err := cm.Choose(costmodel.Conditions{BandwidthMbps: 0.01}, costmodel.Objective{Kind: costmodel.MinLatency, AccuracyFloor: 0.88}, allowed)
	if err != nil {
		t.Fatal(err)
	}
	if ch.Best.Split == 2 {
		t.Fatalf("chose the masked device-only arm")
	}
	reasons := map[costmodel.Arm]string{}
	for _, r := range ch.Ranked {
		reasons[r.Arm] = r.Excluded
	}
	if reasons[costmodel.Arm{Split: 2, Bits: 32}] != "masked" {
		t.Errorf("device-only reason %q, want masked", reasons[costmodel.Arm{Split: 2, Bits: 32}])
	}
	if got := reasons[costmodel.Arm{Split: 0, Bits: 4}]; !strings.Contains(got, "accuracy 0.700 below floor 0.880") {
		t.Errorf("s0/b4 reason %q", got)
	}
	all := make([]bool, len(cm.Arms()))
	_, err = cm.Choose(costmodel.Conditions{BandwidthMbps: 1}, costmodel.Objective{Kind: costmodel.MinLatency}, all)
	if !errors.Is(err, costmodel.ErrNoEligibleArm) {
		t.Fatalf("everything masked: err %v, want ErrNoEligibleArm", err)
	}
}

// TestExampleChoiceDependsOnBandwidth is the claim the demo shows: the
// static choice moves with the link.
func TestExampleChoiceDependsOnBandwidth(t *testing.T) {
	cm := exampleModels(t)["resnet50/phone-low"]
	o := costmodel.Objective{Kind: costmodel.MinLatency, AccuracyFloor: 0.75}
	var chosen []costmodel.Arm
	for _, bw := range []float64{0.5, 20} {
		ch, err := cm.Choose(costmodel.Conditions{BandwidthMbps: bw, RTTMs: 40}, o, nil)
		if err != nil {
			t.Fatal(err)
		}
		chosen = append(chosen, ch.Best)
	}
	if chosen[0] == chosen[1] {
		t.Fatalf("the same arm %v at 0.5 and 20 Mbit/s", chosen[0])
	}
	if chosen[0].Split != cm.Manifest.K() || chosen[1].Split != 0 {
		t.Errorf("want device-only at 0.5 Mbit/s and cloud-only at 20, got %v and %v", chosen[0], chosen[1])
	}
}

func TestBadInputRejected(t *testing.T) {
	cases := []struct {
		name   string
		mutate func(m *model.Manifest, dev, cloud *costmodel.Profile, acc *costmodel.AccuracyTable)
		want   string
	}{
		{"negative latency", func(_ *model.Manifest, dev, _ *costmodel.Profile, _ *costmodel.AccuracyTable) {
			dev.Blocks[1].MedianMs = -1
		}, "blocks[1].median_ms: negative"},
		{"NaN latency", func(_ *model.Manifest, _, cloud *costmodel.Profile, _ *costmodel.AccuracyTable) {
			cloud.Blocks[0].P95Ms = math.NaN()
		}, "blocks[0].p95_ms: NaN"},
		{"p95 below median", func(_ *model.Manifest, dev, _ *costmodel.Profile, _ *costmodel.AccuracyTable) {
			dev.Blocks[0].P95Ms = 1
		}, "below the median"},
		{"mismatched block count", func(_ *model.Manifest, dev, _ *costmodel.Profile, _ *costmodel.AccuracyTable) {
			dev.Blocks = dev.Blocks[:1]
		}, "has 1 entries, the model has 2 blocks"},
		{"unknown bits in manifest", func(m *model.Manifest, _, _ *costmodel.Profile, _ *costmodel.AccuracyTable) {
			m.AllowedBits = append(m.AllowedBits, 5)
		}, "unknown precision 5"},
		{"unknown bits in accuracy table", func(_ *model.Manifest, _, _ *costmodel.Profile, acc *costmodel.AccuracyTable) {
			acc.Entries[0].Bits = 7
		}, "entries[0].bits: unknown precision 7"},
		{"accuracy above one", func(_ *model.Manifest, _, _ *costmodel.Profile, acc *costmodel.AccuracyTable) {
			acc.Entries[2].Accuracy = 1.5
		}, "entries[2].accuracy: 1.5 is above 1"},
		{"split past the model", func(_ *model.Manifest, _, _ *costmodel.Profile, acc *costmodel.AccuracyTable) {
			acc.Entries[0].Split = 9
		}, "entries[0].split: 9 is outside"},
		{"wrong model name", func(_ *model.Manifest, _, cloud *costmodel.Profile, _ *costmodel.AccuracyTable) {
			cloud.Model = "other"
		}, `model: "other"`},
		{"swapped roles", func(_ *model.Manifest, dev, _ *costmodel.Profile, _ *costmodel.AccuracyTable) {
			dev.Role = costmodel.RoleCloud
		}, "where a device profile is needed"},
		{"element count mismatch", func(m *model.Manifest, _, _ *costmodel.Profile, _ *costmodel.AccuracyTable) {
			m.Blocks[0].Output.Elements = 3
		}, "blocks[0].output: elements: 3 does not match"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m, dev, cloud, acc := tiny(t)
			tc.mutate(m, dev, cloud, acc)
			_, err := costmodel.New(m, dev, cloud, acc)
			if err == nil {
				t.Fatal("accepted")
			}
			if !errors.Is(err, costmodel.ErrInvalid) && !errors.Is(err, model.ErrInvalidManifest) {
				t.Errorf("error %v does not wrap a sentinel", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not say %q", err, tc.want)
			}
		})
	}
}

func TestBadConditionsAndObjectives(t *testing.T) {
	cm := tinyModel(t)
	ok := costmodel.Objective{Kind: costmodel.MinLatency}
	cases := []struct {
		name string
		c    costmodel.Conditions
		o    costmodel.Objective
		want string
	}{
		{"zero bandwidth", costmodel.Conditions{}, ok, "bandwidth_mbps: zero"},
		{"NaN bandwidth", costmodel.Conditions{BandwidthMbps: math.NaN()}, ok, "bandwidth_mbps: NaN"},
		{"negative rtt", costmodel.Conditions{BandwidthMbps: 1, RTTMs: -3}, ok, "rtt_ms: negative"},
		{"infinite slowdown", costmodel.Conditions{BandwidthMbps: 1, DeviceSlowdown: math.Inf(1)}, ok, "device_slowdown: infinite"},
		{"unknown objective", costmodel.Conditions{BandwidthMbps: 1}, costmodel.Objective{Kind: "fastest"}, `unknown objective "fastest"`},
		{"cloud cost without SLO", costmodel.Conditions{BandwidthMbps: 1}, costmodel.Objective{Kind: costmodel.MinCloudCost}, "needs a latency SLO"},
		{"weighted without weights", costmodel.Conditions{BandwidthMbps: 1}, costmodel.Objective{Kind: costmodel.Weighted}, "all zero"},
		{"floor above one", costmodel.Conditions{BandwidthMbps: 1}, costmodel.Objective{Kind: costmodel.MinLatency, AccuracyFloor: 2}, "accuracy_floor"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := cm.Choose(tc.c, tc.o, nil)
			if err == nil || !errors.Is(err, costmodel.ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want ErrInvalid saying %q", err, tc.want)
			}
		})
	}
}

func TestJSONReadersRejectUnknownFieldsAndGarbage(t *testing.T) {
	for _, tc := range []struct {
		name, doc, want string
		read            func(string) error
	}{
		{"profile unknown field", `{"version":1,"model":"m","device_class":"d","role":"device","host":"h","blocks":[{"median_ms":1,"p95_ms":1}],"colour":"red"}`, `unknown field "colour"`,
			func(s string) error { _, err := costmodel.ReadProfile(strings.NewReader(s)); return err }},
		{"profile truncated", `{"version":1,"model":"m"`, "unexpected EOF",
			func(s string) error { _, err := costmodel.ReadProfile(strings.NewReader(s)); return err }},
		{"profile wrong version", `{"version":2,"model":"m","device_class":"d","role":"device","host":"h","blocks":[{"median_ms":1,"p95_ms":1}]}`, "version: got 2",
			func(s string) error { _, err := costmodel.ReadProfile(strings.NewReader(s)); return err }},
		{"accuracy wrong type", `{"version":1,"model":"m","baseline":"high"}`, "baseline",
			func(s string) error { _, err := costmodel.ReadAccuracyTable(strings.NewReader(s)); return err }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.read(tc.doc)
			if err == nil || !errors.Is(err, costmodel.ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want ErrInvalid saying %q", err, tc.want)
			}
		})
	}
}

// A 32-bit entry contributes its compression ratio but not its accuracy:
// full precision loses nothing.
func TestFullPrecisionEntryGivesCompressionOnly(t *testing.T) {
	m, dev, cloud, acc := tiny(t)
	acc.Entries = append(acc.Entries, costmodel.AccuracyEntry{Split: 1, Bits: 32, Accuracy: 0.5, Agreement: 0.5, CompressionRatio: 0.25})
	cm, err := costmodel.New(m, dev, cloud, acc)
	if err != nil {
		t.Fatal(err)
	}
	s := cm.Predict(index(t, cm, 1, 32), costmodel.Conditions{BandwidthMbps: 8})
	if want := 500*4*0.25 + costmodel.PackHeaderBytes; s.Bytes != want {
		t.Errorf("bytes %g, want %g", s.Bytes, want)
	}
	if s.Accuracy != 0.9 {
		t.Errorf("accuracy %g, want the baseline 0.9", s.Accuracy)
	}
}

func TestValidateMeasuredNamesTheField(t *testing.T) {
	good := costmodel.Stages{DeviceMs: 1, Bytes: 10, NetworkMs: 2}
	if err := good.ValidateMeasured(); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		s    costmodel.Stages
		want string
	}{
		{"negative bytes", costmodel.Stages{Bytes: -1}, "bytes: -1"},
		{"NaN cloud", costmodel.Stages{CloudMs: math.NaN()}, "cloud_ms: NaN"},
		{"infinite rtt", costmodel.Stages{RTTMs: math.Inf(1)}, "rtt_ms: +Inf"},
	} {
		if err := tc.s.ValidateMeasured(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err %v, want %q", tc.name, err, tc.want)
		}
	}
}

// PredictCost is the static scheduler's shortcut for Cost(Predict): it must
// give the same bits for every arm, objective and condition.
func TestPredictCostIsCostOfPredict(t *testing.T) {
	seed := uint64(20261128)
	r := rand.New(rand.NewPCG(seed, 9))
	objectives := []costmodel.Objective{
		{Kind: costmodel.MinLatency}, {Kind: costmodel.MaxThroughput}, {Kind: costmodel.MinCloudCost, LatencySLOMs: 200},
		{Kind: costmodel.Weighted, LatencySLOMs: 150, SLOPenalty: 3, Weights: costmodel.Weights{LatencyMs: 1, BottleneckMs: 0.5, CloudGPUMs: 2, KB: 0.01}},
	}
	for name, cm := range exampleModels(t) {
		bases := cm.Bases()
		for trial := 0; trial < 200; trial++ {
			c := randomConditions(r)
			for _, o := range objectives {
				for i := range bases {
					want := o.Cost(cm.Predict(i, c))
					if got := o.PredictCost(&bases[i], &c); math.Float64bits(got) != math.Float64bits(want) {
						t.Fatalf("seed %d, %s arm %v, %s: PredictCost %v, Cost(Predict) %v", seed, name, cm.Arms()[i], o.Kind, got, want)
					}
				}
			}
		}
	}
}
