package store

import (
	"encoding/json"
	"fmt"
)

// putJSON stores v as JSON under key in bucket.
func (t *Tx) putJSON(bucket []byte, key string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode %s/%s: %w", bucket, key, err)
	}
	return t.bucket(bucket).Put([]byte(key), b)
}

// getJSON decodes the value under key into v; it reports false when there
// is none.
func (t *Tx) getJSON(bucket []byte, key string, v any) (bool, error) {
	b := t.bucket(bucket).Get([]byte(key))
	if b == nil {
		return false, nil
	}
	if err := json.Unmarshal(b, v); err != nil {
		return false, fmt.Errorf("%w: %s/%s: %v", ErrCorruptRecord, bucket, key, err)
	}
	return true, nil
}

// forEachJSON decodes every value of bucket in key order with newV and
// calls fn with it.
func forEachJSON[T any](t *Tx, bucket []byte, fn func(T) error) error {
	return t.bucket(bucket).ForEach(func(k, b []byte) error {
		var v T
		if err := json.Unmarshal(b, &v); err != nil {
			return fmt.Errorf("%w: %s/%s: %v", ErrCorruptRecord, bucket, k, err)
		}
		return fn(v)
	})
}
