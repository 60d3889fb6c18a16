package controller

import (
	"sort"
	"sync"
	"time"

	"github.com/dynoml/dyno/store"
)

// executors holds what the controller knows of each registered executor;
// the records are written back to the store about once a second. It is
// safe for concurrent use.
type executors struct {
	mu sync.Mutex
	m  map[string]*execState
}

// execState is one executor; its fields are guarded by mu.
type execState struct {
	mu        sync.Mutex
	use       armUse
	rec       store.Executor
	dirty     bool
	connected int
	limiter   tokenBucket
	through   uint64
}

func newExecutors() *executors { return &executors{m: map[string]*execState{}} }

func (e *executors) get(id string) *execState {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.m[id]
}

// put adds or replaces the record of an executor, keeping its limiter.
func (e *executors) put(rec store.Executor, rate float64, burst int) *execState {
	e.mu.Lock()
	defer e.mu.Unlock()
	x := e.m[rec.ID]
	if x == nil {
		x = &execState{limiter: newTokenBucket(rate, burst)}
		e.m[rec.ID] = x
	}
	x.mu.Lock()
	x.rec = rec
	x.mu.Unlock()
	return x
}

func (e *executors) list() []*execState {
	e.mu.Lock()
	out := make([]*execState, 0, len(e.m))
	for _, x := range e.m {
		out = append(out, x)
	}
	e.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].rec.ID < out[j].rec.ID })
	return out
}

// countByKey counts the executors of each key.
func (e *executors) countByKey() map[string]int {
	out := map[string]int{}
	for _, x := range e.list() {
		x.mu.Lock()
		out[x.rec.Key]++
		x.mu.Unlock()
	}
	return out
}

// dirtyRecords returns copies of the records changed since the last call.
func (e *executors) dirtyRecords() []store.Executor {
	var out []store.Executor
	for _, x := range e.list() {
		x.mu.Lock()
		if x.dirty {
			out = append(out, x.rec)
			x.dirty = false
		}
		x.mu.Unlock()
	}
	return out
}

// seen notes applied reports.
func (x *execState) seen(now time.Time, accepted int, through uint64) {
	x.mu.Lock()
	x.rec.LastSeen = now
	x.rec.Reports += uint64(accepted)
	x.through = max(x.through, through)
	x.dirty = true
	x.mu.Unlock()
}

// tokenBucket limits a rate with a burst. Not safe for concurrent use: the
// executor's mutex guards it.
type tokenBucket struct {
	rate, burst, tokens float64
	last                time.Time
}

func newTokenBucket(rate float64, burst int) tokenBucket {
	return tokenBucket{rate: rate, burst: float64(burst), tokens: float64(burst)}
}

// take takes n tokens if they are there now, and otherwise says how long
// until they will be.
func (b *tokenBucket) take(n int, now time.Time) (wait time.Duration) {
	if !b.last.IsZero() {
		b.tokens = min(b.burst, b.tokens+b.rate*now.Sub(b.last).Seconds())
	}
	b.last = now
	need := float64(n)
	if need > b.burst {
		// A batch larger than the burst can never pass: let it through
		// when the bucket is full, paying it all.
		need = b.burst
	}
	if b.tokens >= need {
		b.tokens -= float64(n)
		return 0
	}
	return time.Duration((need - b.tokens) / b.rate * float64(time.Second))
}
