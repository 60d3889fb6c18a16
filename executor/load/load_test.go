package load

import (
	"encoding/binary"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dynoml/dyno/costmodel"
)

func TestSummaryFigures(t *testing.T) {
	s := &Summary{Served: 4, Elapsed: 2 * time.Second, Latencies: []float64{10, 20, 30, 40},
		Arms: map[costmodel.Arm]int{{Split: 1, Bits: 8}: 3, {Split: 3, Bits: 32}: 1}, Bytes: 4000, Network: 8,
		armStages: map[costmodel.Arm]*[3]float64{{Split: 1, Bits: 8}: {30, 8, 3}, {Split: 3, Bits: 32}: {50, 0, 0}}}
	for _, c := range []struct {
		name      string
		got, want float64
	}{
		{"throughput", s.Throughput(), 2},
		{"p50", s.Percentile(0.5), 20},
		{"p95", s.Percentile(0.95), 40},
		{"p0", s.Percentile(0), 10},
		{"mean", s.MeanLatency(), 25},
		{"bandwidth", s.MeasuredBandwidthMbps(), 4000 * 8 / 8e3},
		// device 80 ms over 4 requests is the bottleneck: 4 / 0.08 s.
		{"stage bound", s.StageBound(), 50},
	} {
		if math.Abs(c.got-c.want) > 1e-9 {
			t.Errorf("%s: %g, want %g", c.name, c.got, c.want)
		}
	}
	if got := s.ArmShares(); got != "s1/b8 75%, s3/b32 25%" {
		t.Errorf("arm shares %q", got)
	}
	if !math.IsNaN((&Summary{}).Accuracy()) || !math.IsNaN((&Summary{}).Percentile(0.5)) {
		t.Error("an empty summary has an accuracy or a latency")
	}
}

func writeF32(t *testing.T, path string, v []float32) {
	t.Helper()
	b := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(x))
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestFolder(t *testing.T) {
	dir := t.TempDir()
	writeF32(t, filepath.Join(dir, "b.f32"), []float32{3, 4})
	writeF32(t, filepath.Join(dir, "a.f32"), []float32{1, 2})
	if err := os.WriteFile(filepath.Join(dir, "labels.txt"), []byte("7\n-1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	in, err := Folder(dir, 2)
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []struct {
		x0    float32
		label int
	}{{1, 7}, {3, -1}, {1, 7}} {
		got, ok := in.Next()
		if !ok || got.X[0] != want.x0 || got.Label != want.label {
			t.Errorf("input %d: %v %v, want x[0] %g label %d", i, got, ok, want.x0, want.label)
		}
	}
	for name, c := range map[string]struct {
		files    map[string][]byte
		elements int
		want     string
	}{
		"empty":      {nil, 2, "no *.f32 inputs"},
		"size":       {map[string][]byte{"a.f32": make([]byte, 12)}, 2, "12 bytes"},
		"labels":     {map[string][]byte{"a.f32": make([]byte, 8), "labels.txt": []byte("1\n2\n")}, 2, "2 labels"},
		"bad label":  {map[string][]byte{"a.f32": make([]byte, 8), "labels.txt": []byte("cat\n")}, 2, "not a class"},
		"mnist size": {map[string][]byte{"t10k-images-idx3-ubyte.gz": nil}, 3, "MNIST folder"},
	} {
		d := t.TempDir()
		for f, b := range c.files {
			if err := os.WriteFile(filepath.Join(d, f), b, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := Folder(d, c.elements); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error naming %q", name, err, c.want)
		}
	}
}
