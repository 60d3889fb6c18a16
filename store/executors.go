package store

import "time"

// Executor is what the controller keeps of a registered executor.
type Executor struct {
	ID          string            `json:"id"`
	Key         string            `json:"key"`
	Model       string            `json:"model"`
	DeviceClass string            `json:"device_class"`
	Version     string            `json:"version,omitempty"`
	Labels      map[string]string `json:"labels,omitempty"`
	// TokenName is the name of the token it registered with.
	TokenName string `json:"token_name,omitempty"`
	// Owner is the identity that first registered it ("token:NAME", or
	// "cert:SUBJECT" under mutual TLS); only that identity may register,
	// report and watch as this id. Records written before owners were
	// kept are owned by "token:" and their TokenName.
	Owner        string    `json:"owner,omitempty"`
	RegisteredAt time.Time `json:"registered_at"`
	LastSeen     time.Time `json:"last_seen"`
	// Reports counts the reports applied from it.
	Reports uint64 `json:"reports"`
	// AckedVersion is the version of its key it last ACKed; LastNACK its
	// last NACK's detail.
	AckedVersion uint64 `json:"acked_version,omitempty"`
	LastNACK     string `json:"last_nack,omitempty"`
}

// OwnerOf is the identity that owns e.
func (e *Executor) OwnerOf() string {
	if e.Owner == "" && e.TokenName != "" {
		return "token:" + e.TokenName
	}
	return e.Owner
}

// DeleteExecutor removes an executor's record and its report window.
func (t *Tx) DeleteExecutor(id string) error {
	if err := t.bucket(bucketExecutors).Delete([]byte(id)); err != nil {
		return err
	}
	if err := t.bucket(bucketCounters).Delete([]byte(id)); err != nil {
		return err
	}
	return t.bucket(bucketDedup).Delete([]byte(id))
}

// PutExecutor stores e under e.ID.
func (t *Tx) PutExecutor(e *Executor) error { return t.putJSON(bucketExecutors, e.ID, e) }

// Executor returns the executor with this id, or false.
func (t *Tx) Executor(id string) (Executor, bool, error) {
	var e Executor
	ok, err := t.getJSON(bucketExecutors, id, &e)
	return e, ok, err
}

// ForEachExecutor calls fn with every executor in id order.
func (t *Tx) ForEachExecutor(fn func(Executor) error) error {
	return forEachJSON(t, bucketExecutors, fn)
}
