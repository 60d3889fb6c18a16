package store

import "time"

// Pin forces a key onto one arm.
type Pin struct {
	Key   string `json:"key"`
	Split int    `json:"split"`
	Bits  int    `json:"bits"`
	// Until is when the pin lapses; zero for never.
	Until  time.Time `json:"until,omitzero"`
	By     string    `json:"by"`
	At     time.Time `json:"at"`
	Reason string    `json:"reason,omitempty"`
}

// PutPin pins p.Key.
func (t *Tx) PutPin(p *Pin) error { return t.putJSON(bucketPins, p.Key, p) }

// DeletePin unpins key.
func (t *Tx) DeletePin(key string) error { return t.bucket(bucketPins).Delete([]byte(key)) }

// Pin returns the pin of key, or false.
func (t *Tx) Pin(key string) (Pin, bool, error) {
	var p Pin
	ok, err := t.getJSON(bucketPins, key, &p)
	return p, ok, err
}
