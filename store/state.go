package store

// State is a key's learning state: the bandit's serialised state, and how
// far into the trace log it reflects.
type State struct {
	Key string `json:"key"`
	// Kind names the bandit that wrote Data.
	Kind string `json:"kind"`
	Data []byte `json:"data"`
	// AppliedSeq is the last trace sequence number applied to Data (traces
	// of other keys in between do not matter). A restart replays the key's
	// traces above it.
	AppliedSeq uint64 `json:"applied_seq"`
	// Reports counts the reports applied since the last reset;
	// TotalReports since the key was made.
	Reports      uint64 `json:"reports"`
	TotalReports uint64 `json:"total_reports"`
	// Version is the last published policy version.
	Version uint64 `json:"version"`
	// ResetSeq is the last trace sequence number before the last reset
	// (zero if never reset): the state reflects the key's traces above it.
	ResetSeq uint64 `json:"reset_seq,omitempty"`
}

// PutState stores the state of s.Key.
func (t *Tx) PutState(s *State) error { return t.putJSON(bucketState, s.Key, s) }

// State returns the state of key, or false.
func (t *Tx) State(key string) (State, bool, error) {
	var s State
	ok, err := t.getJSON(bucketState, key, &s)
	return s, ok, err
}
