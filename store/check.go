package store

import (
	"encoding/binary"
	"encoding/json"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// checkRecords decodes every record of every bucket, so that a store with a
// damaged record is refused on Open, before anything is written to it,
// rather than failing (or being written) later.
func checkRecords(tx *bolt.Tx) error {
	meta := tx.Bucket(bucketMeta)
	if v := meta.Get(metaCreated); len(v) != 8 {
		return fmt.Errorf("%w: meta/created is %d bytes", ErrCorruptRecord, len(v))
	}
	if v := meta.Get(metaReplayFrom); v != nil && len(v) != 8 {
		return fmt.Errorf("%w: meta/replay_from is %d bytes", ErrCorruptRecord, len(v))
	}
	checks := []struct {
		bucket []byte
		check  func(k, v []byte) error
	}{
		{bucketExecutors, func(k, v []byte) error {
			var e Executor
			return named(k, &e, v, func() string { return e.ID })
		}},
		{bucketModels, func(k, v []byte) error {
			var m Model
			if err := named(k, &m, v, func() string { return m.Name }); err != nil {
				return err
			}
			if len(m.Manifest) == 0 || len(m.Accuracy) == 0 {
				return fmt.Errorf("no manifest or accuracy table")
			}
			return nil
		}},
		{bucketKeys, func(k, v []byte) error {
			var r Key
			if err := named(k, &r, v, func() string { return r.Key }); err != nil {
				return err
			}
			return r.checkFloors()
		}},
		{bucketState, func(k, v []byte) error {
			var r State
			return named(k, &r, v, func() string { return r.Key })
		}},
		{bucketPins, func(k, v []byte) error {
			var r Pin
			return named(k, &r, v, func() string { return r.Key })
		}},
		{bucketAudit, func(k, v []byte) error {
			var e Event
			if len(k) != 8 {
				return fmt.Errorf("key of %d bytes", len(k))
			}
			if err := json.Unmarshal(v, &e); err != nil {
				return err
			}
			if e.Seq != binary.BigEndian.Uint64(k) {
				return fmt.Errorf("holds event %d", e.Seq)
			}
			return nil
		}},
		{bucketPolicies, func(k, v []byte) error {
			if v != nil {
				return fmt.Errorf("a value where a bucket of versions belongs")
			}
			return tx.Bucket(bucketPolicies).Bucket(k).ForEach(func(ver, data []byte) error {
				if len(ver) != 8 || len(data) == 0 {
					return fmt.Errorf("version key of %d bytes, %d bytes of policy", len(ver), len(data))
				}
				return nil
			})
		}},
		{bucketTraces, func(k, v []byte) error {
			bl, err := decodeBlock(k, v)
			if err != nil {
				return err
			}
			for i, e := range bl.entries {
				if _, err := DecodeTrace(bl.first+uint64(i), e); err != nil {
					return err
				}
			}
			return nil
		}},
		{bucketDedup, func(k, v []byte) error {
			_, err := decodeWindow(v)
			return err
		}},
		{bucketCounters, func(k, v []byte) error {
			if len(v) != 8 {
				return fmt.Errorf("%d bytes", len(v))
			}
			return nil
		}},
	}
	for _, c := range checks {
		b := tx.Bucket(c.bucket)
		if b == nil {
			continue // an older schema; checkIdentity knows which it needs
		}
		err := b.ForEach(func(k, v []byte) error {
			if err := c.check(k, v); err != nil {
				return fmt.Errorf("%w: %s/%q: %v", ErrCorruptRecord, c.bucket, k, err)
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// named decodes a JSON record and checks that it is filed under its name.
func named(k []byte, v any, raw []byte, name func() string) error {
	if raw == nil {
		return fmt.Errorf("a bucket where a record belongs")
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return err
	}
	if n := name(); n != string(k) {
		return fmt.Errorf("holds the record of %q", n)
	}
	return nil
}
