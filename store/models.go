package store

import (
	"encoding/json"
	"time"
)

// Model is a model the controller can learn for: its manifest, accuracy
// table and the latency profiles of each device class and cloud, kept as
// the JSON documents they were read from (the controller decodes and
// validates them with the model and costmodel packages).
type Model struct {
	Name     string          `json:"name"`
	Manifest json.RawMessage `json:"manifest"`
	Accuracy json.RawMessage `json:"accuracy"`
	// Profiles maps a class name to its profile.
	Profiles map[string]json.RawMessage `json:"profiles"`
	// Source is where the documents were read from.
	Source    string    `json:"source,omitempty"`
	UpdatedAt time.Time `json:"updated_at"`
}

// PutModel stores m under m.Name.
func (t *Tx) PutModel(m *Model) error { return t.putJSON(bucketModels, m.Name, m) }

// Model returns the model of this name, or false.
func (t *Tx) Model(name string) (Model, bool, error) {
	var m Model
	ok, err := t.getJSON(bucketModels, name, &m)
	return m, ok, err
}

// ForEachModel calls fn with every model in name order.
func (t *Tx) ForEachModel(fn func(Model) error) error { return forEachJSON(t, bucketModels, fn) }
