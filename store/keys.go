package store

import (
	"encoding/json"
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
}

// PutKey stores k under k.Key.
func (t *Tx) PutKey(k *Key) error { return t.putJSON(bucketKeys, k.Key, k) }

// Key returns the key record, or false.
func (t *Tx) Key(key string) (Key, bool, error) {
	var k Key
	ok, err := t.getJSON(bucketKeys, key, &k)
	return k, ok, err
}

// ForEachKey calls fn with every key in order.
func (t *Tx) ForEachKey(fn func(Key) error) error { return forEachJSON(t, bucketKeys, fn) }
