package store

import (
	"encoding/json"
	"fmt"
	"time"
)

// Key is a unit that learns: a model on a device class under a named
// objective.
type Key struct {
	Key           string `json:"key"`
	Model         string `json:"model"`
	DeviceClass   string `json:"device_class"`
	CloudClass    string `json:"cloud_class"`
	ObjectiveName string `json:"objective_name"`
	// Objective is the costmodel.Objective in force, as JSON.
	Objective json.RawMessage `json:"objective"`
	CreatedAt time.Time       `json:"created_at"`
	// ExploreFloor and BaselineFloor are the operator's exploration floors
	// of the key's dyno policy (bandit.DynoConfig): zero is the default,
	// -1 off, otherwise a share in (0, 1).
	ExploreFloor  float64 `json:"explore_floor,omitempty"`
	BaselineFloor float64 `json:"baseline_floor,omitempty"`
}

// checkFloors refuses floors no operator could have set; the policy's own
// bounds (bandit.CheckFloors) apply when the controller builds it.
func (k *Key) checkFloors() error {
	for _, f := range []struct {
		name string
		v    float64
	}{{"explore_floor", k.ExploreFloor}, {"baseline_floor", k.BaselineFloor}} {
		if !(f.v == -1 || (f.v >= 0 && f.v < 1)) {
			return fmt.Errorf("%s %g is not -1 (off), 0 (the default) or a share in (0, 1)", f.name, f.v)
		}
	}
	return nil
}

// PutKey stores k under k.Key; floors out of range are ErrInvalid.
func (t *Tx) PutKey(k *Key) error {
	if err := k.checkFloors(); err != nil {
		return fmt.Errorf("%w: key %s: %v", ErrInvalid, k.Key, err)
	}
	return t.putJSON(bucketKeys, k.Key, k)
}

// Key returns the key record, or false.
func (t *Tx) Key(key string) (Key, bool, error) {
	var k Key
	ok, err := t.getJSON(bucketKeys, key, &k)
	return k, ok, err
}

// ForEachKey calls fn with every key in order.
func (t *Tx) ForEachKey(fn func(Key) error) error { return forEachJSON(t, bucketKeys, fn) }
