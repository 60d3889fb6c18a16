package controller

import (
	"math"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/dynoml/dyno/api"
	"github.com/dynoml/dyno/bandit"
	"github.com/dynoml/dyno/costmodel"
	"github.com/dynoml/dyno/store"
)

const testKeyName = "mobilenetv2/phone-low/default"

// testRegistry holds the key of MobileNetV2 on a low-end phone.
func testRegistry(t testing.TB) *registry {
	t.Helper()
	sm, err := readModelDir("../examples/mobilenetv2")
	if err != nil {
		t.Fatal(err)
	}
	m, err := decodeModel(sm)
	if err != nil {
		t.Fatal(err)
	}
	reg := newRegistry()
	reg.addModel(m)
	k, err := newKeyEntry(&store.Key{Key: testKeyName, Model: "mobilenetv2", DeviceClass: "phone-low", CloudClass: "cloud-t4", ObjectiveName: "default"}, m)
	if err != nil {
		t.Fatal(err)
	}
	reg.addKey(k)
	return reg
}

func validReport() *api.Report {
	acc := 1.0
	return &api.Report{
		Seq: 1, Key: testKeyName, Arm: &api.Arm{Split: 3, Bits: 8}, Propensity: 0.2, PolicyVersion: 1,
		Conditions: &api.Conditions{BandwidthMbps: 10, RttMs: 40},
		Stages:     &api.Stages{DeviceMs: 5, PackMs: 0.1, NetworkMs: 3, RttMs: 40, CloudMs: 2, UnpackMs: 0.1},
		Bytes:      5000, Accuracy: &acc, Eligible: eligibleAll(141), AllowedBits: []uint32{32, 16, 8, 6, 4, 3, 2},
	}
}

// eligibleAll is the bitset of n arms, all eligible.
func eligibleAll(n int) []byte {
	b := make([]byte, (n+7)/8)
	for i := 0; i < n; i++ {
		b[i/8] |= 1 << (i % 8)
	}
	return b
}

func TestValidateNamesTheField(t *testing.T) {
	reg := testRegistry(t)
	nan, inf := math.NaN(), math.Inf(1)
	cases := []struct {
		name   string
		modify func(r *api.Report)
		field  string // "" for valid
	}{
		{"valid", func(r *api.Report) {}, ""},
		{"seq zero", func(r *api.Report) { r.Seq = 0 }, "seq"},
		{"unknown key", func(r *api.Report) { r.Key = "resnet50/phone-low/default" }, "key"},
		{"unknown model", func(r *api.Report) { r.Key = "nosuchmodel/phone-low/default" }, "key"},
		{"no arm", func(r *api.Report) { r.Arm = nil }, "arm"},
		{"unknown bits", func(r *api.Report) { r.Arm.Bits = 5 }, "arm"},
		{"split beyond the model", func(r *api.Report) { r.Arm.Split = 1000 }, "arm"},
		{"huge split", func(r *api.Report) { r.Arm.Split = math.MaxUint32 }, "arm"},
		{"propensity zero", func(r *api.Report) { r.Propensity = 0 }, "propensity"},
		{"propensity above one", func(r *api.Report) { r.Propensity = 1.5 }, "propensity"},
		{"propensity NaN", func(r *api.Report) { r.Propensity = nan }, "propensity"},
		{"propensity negative", func(r *api.Report) { r.Propensity = -0.1 }, "propensity"},
		{"no conditions", func(r *api.Report) { r.Conditions = nil }, "conditions"},
		{"bandwidth NaN", func(r *api.Report) { r.Conditions.BandwidthMbps = nan }, "conditions.bandwidth_mbps"},
		{"bandwidth zero", func(r *api.Report) { r.Conditions.BandwidthMbps = 0 }, "conditions.bandwidth_mbps"},
		{"rtt negative", func(r *api.Report) { r.Conditions.RttMs = -1 }, "conditions.rtt_ms"},
		{"slowdown infinite", func(r *api.Report) { r.Conditions.DeviceSlowdown = inf }, "conditions.device_slowdown"},
		{"no stages", func(r *api.Report) { r.Stages = nil }, "stages"},
		{"device time NaN", func(r *api.Report) { r.Stages.DeviceMs = nan }, "stages.device_ms"},
		{"negative network time", func(r *api.Report) { r.Stages.NetworkMs = -3 }, "stages.network_ms"},
		{"negative cloud time", func(r *api.Report) { r.Stages.CloudMs = -1e-9 }, "stages.cloud_ms"},
		{"infinite latency", func(r *api.Report) { r.Stages.LatencyMs = inf }, "stages.latency_ms"},
		{"negative queue", func(r *api.Report) { r.Stages.CloudQueueMs = -1 }, "stages.cloud_queue_ms"},
		{"bytes NaN", func(r *api.Report) { r.Bytes = nan }, "bytes"},
		{"bytes negative", func(r *api.Report) { r.Bytes = -1 }, "bytes"},
		{"bytes zero for a sending arm", func(r *api.Report) { r.Bytes = 0 }, "bytes"},
		{"bytes beyond the tensor", func(r *api.Report) { r.Bytes = 1e12 }, "bytes"},
		{"accuracy above one", func(r *api.Report) { v := 1.5; r.Accuracy = &v }, "accuracy"},
		{"accuracy NaN", func(r *api.Report) { v := nan; r.Accuracy = &v }, "accuracy"},
		{"eligible too long", func(r *api.Report) { r.Eligible = make([]byte, 1000) }, "eligible"},
		{"eligible beyond the last arm", func(r *api.Report) { r.Eligible[17] |= 0x20 }, "eligible"},
		{"chosen arm not eligible", func(r *api.Report) { i := armIdx(reg, 3, 8); r.Eligible[i/8] &^= 1 << (i % 8) }, "eligible"},
		{"eligible short of the chosen arm", func(r *api.Report) { r.Eligible = []byte{0xff} }, "eligible"},
		{"probability on an arm not eligible", func(r *api.Report) {
			i := armIdx(reg, 3, 8)
			r.Probs = make([]float64, 141)
			r.Probs[i], r.Probs[0] = 0.2, 0.8
			r.Eligible[0] &^= 1
		}, "eligible"},
		{"eligible only the chosen arm", func(r *api.Report) {
			i := armIdx(reg, 3, 8)
			r.Eligible = make([]byte, 18)
			r.Eligible[i/8] = 1 << (i % 8)
		}, ""},
		{"no eligible set", func(r *api.Report) { r.Eligible = nil }, ""},
		{"allowed bits of another manifest", func(r *api.Report) { r.AllowedBits = []uint32{32, 8} }, "allowed_bits"},
		{"allowed bits in another order", func(r *api.Report) { r.AllowedBits = []uint32{32, 16, 6, 8, 4, 3, 2} }, "allowed_bits"},
		{"no allowed bits", func(r *api.Report) { r.AllowedBits = nil }, ""},
		{"negative start", func(r *api.Report) { r.StartUnixNano = -1 }, "start_unix_nano"},
		{"long request id", func(r *api.Report) { r.RequestId = strings.Repeat("x", 1000) }, "request_id"},
		{"probs of the wrong length", func(r *api.Report) { r.Probs = []float64{1} }, "probs"},
		{"probs not summing to one", func(r *api.Report) { r.Probs = make([]float64, 141); r.Probs[0] = 0.5 }, "probs"},
		{"probs disagreeing with the propensity", func(r *api.Report) { r.Probs = make([]float64, 141); r.Probs[0] = 1 }, "propensity"},
		{"probs negative", func(r *api.Report) { r.Probs = make([]float64, 141); r.Probs[0] = -1 }, "probs[0]"},
		// Plausible, not only finite (the bounds of docs/controller.md).
		{"device time 1e308", func(r *api.Report) { r.Stages.DeviceMs = 1e308 }, "stages.device_ms"},
		{"pack time beyond ten minutes", func(r *api.Report) { r.Stages.PackMs = MaxStageMs * 1.001 }, "stages.pack_ms"},
		{"network time 1e300", func(r *api.Report) { r.Stages.NetworkMs = 1e300 }, "stages.network_ms"},
		{"cloud time 1e20", func(r *api.Report) { r.Stages.CloudMs = 1e20 }, "stages.cloud_ms"},
		{"unpack time 1e10", func(r *api.Report) { r.Stages.UnpackMs = 1e10 }, "stages.unpack_ms"},
		{"stage rtt 1e9", func(r *api.Report) { r.Stages.RttMs = 1e9 }, "stages.rtt_ms"},
		{"stage queue 1e9", func(r *api.Report) { r.Stages.CloudQueueMs = 1e9 }, "stages.cloud_queue_ms"},
		{"latency 1e9", func(r *api.Report) { r.Stages.LatencyMs = 1e9 }, "stages.latency_ms"},
		{"bandwidth 1.8e308", func(r *api.Report) { r.Conditions.BandwidthMbps = math.MaxFloat64 }, "conditions.bandwidth_mbps"},
		{"bandwidth 5e-324", func(r *api.Report) { r.Conditions.BandwidthMbps = 5e-324 }, "conditions.bandwidth_mbps"},
		{"condition rtt 1e12", func(r *api.Report) { r.Conditions.RttMs = 1e12 }, "conditions.rtt_ms"},
		{"condition queue 1e12", func(r *api.Report) { r.Conditions.CloudQueueMs = 1e12 }, "conditions.cloud_queue_ms"},
		{"cloud slowdown 1e6", func(r *api.Report) { r.Conditions.CloudSlowdown = 1e6 }, "conditions.cloud_slowdown"},
		{"device slowdown 1e6", func(r *api.Report) { r.Conditions.DeviceSlowdown = 1e6 }, "conditions.device_slowdown"},
		{"propensity 5e-324", func(r *api.Report) { r.Propensity = 5e-324 }, "propensity"},
		{"propensity below the floor", func(r *api.Report) { r.Propensity = MinPropensity / 2 }, "propensity"},
		{"bytes just beyond the arm's tensor", func(r *api.Report) { r.Bytes = reg.key(testKeyName).maxBytes[armIdx(reg, 3, 8)] + 1 }, "bytes"},
		{"start in a week", func(r *api.Report) { r.StartUnixNano = time.Now().Add(7 * 24 * time.Hour).UnixNano() }, "start_unix_nano"},
		{"start a year ago", func(r *api.Report) { r.StartUnixNano = time.Now().Add(-365 * 24 * time.Hour).UnixNano() }, "start_unix_nano"},
		// At the bounds: accepted.
		{"at the bounds", func(r *api.Report) {
			r.Stages.DeviceMs, r.Conditions.BandwidthMbps, r.Propensity = MaxStageMs, MaxBandwidthMbps, MinPropensity
			r.Bytes = reg.key(testKeyName).maxBytes[armIdx(reg, 3, 8)]
			r.StartUnixNano = time.Now().UnixNano()
		}, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := validReport()
			c.modify(r)
			b := &api.ReportBatch{BatchId: 7, ExecutorId: "ex", Reports: []*api.Report{validReport(), r}}
			b.Reports[0].Seq = 2
			items, err := validateBatch(reg, "ex", testKeyName, b, time.Now(), 100)
			if c.field == "" {
				if err != nil || len(items) != 2 {
					t.Fatalf("valid report refused: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("accepted")
			}
			want := "batch 7: reports[1] (seq " // names the batch and the report
			if !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "): "+c.field+": ") {
				t.Fatalf("error %q does not name %q", err, c.field)
			}
		})
	}
}

func armIdx(reg *registry, split, bits int) int {
	i, _ := reg.key(testKeyName).cm.Index(costmodel.Arm{Split: split, Bits: bits})
	return i
}

func TestValidateDeviceOnly(t *testing.T) {
	reg := testRegistry(t)
	k := reg.key(testKeyName)
	kk := k.cm.Manifest.K()
	r := validReport()
	r.Arm = &api.Arm{Split: uint32(kk), Bits: 32}
	r.Bytes = 0
	if _, err := validateBatch(reg, "ex", testKeyName, &api.ReportBatch{Reports: []*api.Report{r}}, time.Now(), 100); err != nil {
		t.Fatalf("device-only sending nothing: %v", err)
	}
	r.Bytes = 100
	if _, err := validateBatch(reg, "ex", testKeyName, &api.ReportBatch{Reports: []*api.Report{r}}, time.Now(), 100); err == nil || !strings.Contains(err.Error(), "bytes") {
		t.Fatalf("device-only sending bytes: %v", err)
	}
}

func TestValidateBatchLimits(t *testing.T) {
	reg := testRegistry(t)
	if _, err := validateBatch(reg, "ex", testKeyName, &api.ReportBatch{}, time.Now(), 10); err == nil {
		t.Fatal("empty batch accepted")
	}
	b := &api.ReportBatch{}
	for i := 0; i < 11; i++ {
		b.Reports = append(b.Reports, validReport())
	}
	if _, err := validateBatch(reg, "ex", testKeyName, b, time.Now(), 10); err == nil {
		t.Fatal("batch over the limit accepted")
	}
	r := validReport()
	r.Key = ""
	if items, err := validateBatch(reg, "ex", testKeyName, &api.ReportBatch{Reports: []*api.Report{r}}, time.Now(), 10); err != nil || items[0].key.name != testKeyName {
		t.Fatalf("empty key is the executor's: %v", err)
	}
	if _, err := validateBatch(reg, "ex", "other/key/name", &api.ReportBatch{Reports: []*api.Report{validReport()}}, time.Now(), 10); err == nil {
		t.Fatal("a report for another key than the executor's accepted")
	}
}

func TestValidTraceRoundTrips(t *testing.T) {
	reg := testRegistry(t)
	r := validReport()
	items, err := validateBatch(reg, "ex", testKeyName, &api.ReportBatch{Reports: []*api.Report{r}}, time.Unix(100, 5), 10)
	if err != nil {
		t.Fatal(err)
	}
	tr, err := store.DecodeTrace(9, items[0].trace)
	if err != nil {
		t.Fatal(err)
	}
	got := apiTrace(&tr, items[0].arm)
	if got.Seq != 9 || got.ExecutorId != "ex" || got.ReceivedUnixNano != time.Unix(100, 5).UnixNano() || !proto.Equal(got.Report, r) {
		t.Fatalf("trace %v\nwant report %v", got, r)
	}
	br := banditReportOf(&tr)
	if br.Observed != items[0].report.Observed || br.Conditions != items[0].report.Conditions || br.Propensity != r.Propensity {
		t.Fatalf("replayed report %+v differs from the learned one %+v", br, items[0].report)
	}
}

// FuzzReport feeds arbitrary bytes, decoded as a batch, to the validation:
// it must never panic, and what it accepts must be what the bandit accepts.
func FuzzReport(f *testing.F) {
	reg := testRegistry(f)
	seed := func(mod func(r *api.Report)) {
		r := validReport()
		mod(r)
		b, _ := proto.Marshal(&api.ReportBatch{BatchId: 1, ExecutorId: "ex", Reports: []*api.Report{r}})
		f.Add(b)
	}
	seed(func(r *api.Report) {})
	seed(func(r *api.Report) { r.Propensity = 2 })
	seed(func(r *api.Report) { r.Stages.DeviceMs = math.NaN() })
	seed(func(r *api.Report) { r.Bytes = 1e12 })
	seed(func(r *api.Report) { r.Arm = nil })
	seed(func(r *api.Report) { r.Conditions = nil })
	seed(func(r *api.Report) { r.Key = "x" })
	f.Add([]byte{})
	learner, err := bandit.New(bandit.NameDyno, reg.key(testKeyName).cm, bandit.Config{Objective: costmodel.Objective{Kind: costmodel.MinLatency}})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var b api.ReportBatch
		if err := proto.Unmarshal(data, &b); err != nil {
			return
		}
		items, err := validateBatch(reg, "ex", testKeyName, &b, time.Unix(1, 0), 64)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "batch ") {
				t.Fatalf("error does not name the batch: %v", err)
			}
			return
		}
		for i := range items {
			// validateBatch runs the bandit's own check; learning from the
			// report is the stronger one.
			if err := learner.Learn(&items[i].report); err != nil {
				t.Fatalf("accepted a report the bandit refuses: %v", err)
			}
			if _, err := store.DecodeTrace(1, items[i].trace); err != nil {
				t.Fatalf("accepted a report whose trace does not decode: %v", err)
			}
		}
	})
}
