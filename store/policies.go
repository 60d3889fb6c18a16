package store

import (
	"encoding/binary"
	"fmt"
)

// PoliciesKept is how many published versions of each key are kept; older
// ones are deleted as new ones are published.
const PoliciesKept = 16

// Policy is one published version of a key's policy, as the bytes the
// controller sends (an encoded api.Policy).
type Policy struct {
	Key     string
	Version uint64
	Data    []byte
}

// PutPolicy stores a published version and deletes versions older than the
// last PoliciesKept.
func (t *Tx) PutPolicy(p *Policy) error {
	b, err := t.bucket(bucketPolicies).CreateBucketIfNotExists([]byte(p.Key))
	if err != nil {
		return fmt.Errorf("policies of %s: %w", p.Key, err)
	}
	if err := b.Put(be64(p.Version), p.Data); err != nil {
		return err
	}
	c := b.Cursor()
	for k, _ := c.First(); k != nil && p.Version >= PoliciesKept && binary.BigEndian.Uint64(k) <= p.Version-PoliciesKept; k, _ = c.First() {
		if err := c.Delete(); err != nil {
			return err
		}
	}
	return nil
}

// LatestPolicy returns the last published version of key, or false.
func (t *Tx) LatestPolicy(key string) (Policy, bool) {
	b := t.bucket(bucketPolicies).Bucket([]byte(key))
	if b == nil {
		return Policy{}, false
	}
	k, v := b.Cursor().Last()
	if k == nil {
		return Policy{}, false
	}
	return Policy{Key: key, Version: binary.BigEndian.Uint64(k), Data: append([]byte(nil), v...)}, true
}

// PolicyVersion returns one published version of key, or false if it was
// never published or is no longer kept.
func (t *Tx) PolicyVersion(key string, version uint64) (Policy, bool) {
	b := t.bucket(bucketPolicies).Bucket([]byte(key))
	if b == nil {
		return Policy{}, false
	}
	v := b.Get(be64(version))
	if v == nil {
		return Policy{}, false
	}
	return Policy{Key: key, Version: version, Data: append([]byte(nil), v...)}, true
}
