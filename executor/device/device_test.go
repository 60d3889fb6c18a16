package device_test

import (
	"context"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/dynoml/dyno/executor/device"
	"github.com/dynoml/dyno/model/mnist"
)

func TestNewRefusesAnIncompleteConfig(t *testing.T) {
	_, err := device.New(context.Background(), device.Config{ExecutorID: "x", DeviceClass: "y"})
	if err == nil || !strings.Contains(err.Error(), "needs a cost model") {
		t.Fatalf("incomplete config: %v", err)
	}
}

func TestInputs(t *testing.T) {
	set := &mnist.Set{Images: make([]float32, 2*mnist.Side*mnist.Side), Labels: []uint8{3, 7}}
	m := &device.MNIST{Set: set}
	var labels []int
	for range 3 {
		in, ok := m.Next()
		if !ok || len(in.X) != mnist.Side*mnist.Side {
			t.Fatalf("mnist input: %v, %d values", ok, len(in.X))
		}
		labels = append(labels, in.Label)
	}
	if labels[0] != 3 || labels[1] != 7 || labels[2] != 3 {
		t.Fatalf("labels %v: want the set in order, then again", labels)
	}
	if _, ok := (&device.MNIST{Set: &mnist.Set{}}).Next(); ok {
		t.Error("an empty set served an input")
	}
	r := &device.Random{Elements: 10, Rng: rand.New(rand.NewPCG(1, 2))}
	in, ok := r.Next()
	if !ok || len(in.X) != 10 || in.Label >= 0 {
		t.Fatalf("random input: %v %d values, label %d", ok, len(in.X), in.Label)
	}
}
