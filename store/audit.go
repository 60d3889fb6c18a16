package store

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"time"
)

// Event records an operator's change: who did what to which key, when, and
// which policy version carried it.
type Event struct {
	Seq     uint64          `json:"seq"`
	At      time.Time       `json:"at"`
	By      string          `json:"by"`
	Action  string          `json:"action"`
	Key     string          `json:"key"`
	Version uint64          `json:"version"`
	Detail  json.RawMessage `json:"detail,omitempty"`
}

// AppendEvent appends e to the audit log and sets its Seq.
func (t *Tx) AppendEvent(e *Event) error {
	b := t.bucket(bucketAudit)
	seq, err := b.NextSequence()
	if err != nil {
		return err
	}
	e.Seq = seq
	v, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("encode event: %w", err)
	}
	return b.Put(be64(seq), v)
}

// ForEachEvent calls fn with every event from seq on, oldest first.
func (t *Tx) ForEachEvent(from uint64, fn func(Event) error) error {
	c := t.bucket(bucketAudit).Cursor()
	for k, v := c.Seek(be64(from)); k != nil; k, v = c.Next() {
		var e Event
		if err := json.Unmarshal(v, &e); err != nil {
			return fmt.Errorf("%w: audit/%d: %v", ErrCorruptRecord, binary.BigEndian.Uint64(k), err)
		}
		if err := fn(e); err != nil {
			return err
		}
	}
	return nil
}
