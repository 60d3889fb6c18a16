package controller

import (
	"fmt"
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
	// owned counts the executors of each owner (identity).
	owned map[string]int
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
	// claimed marks an id reserved by a registration whose record is not
	// committed yet: it serves no report and no watch.
	claimed bool
	// removed marks an executor taken out of the fleet; streams bound to
	// it stop at their next message.
	removed bool
}

func newExecutors() *executors {
	return &executors{m: map[string]*execState{}, owned: map[string]int{}}
}

func (e *executors) get(id string) *execState {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.m[id]
}

// claim reserves id for owner: it returns the executor's state, new (and
// marked claimed) or existing. It refuses an id owned by someone else, and a
// new id beyond the owner's quota.
func (e *executors) claim(id, owner string, quota int, rate float64, burst int) (x *execState, fresh bool, err error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if x := e.m[id]; x != nil {
		x.mu.Lock()
		o, claimed := x.rec.OwnerOf(), x.claimed
		x.mu.Unlock()
		if o != "" && o != owner {
			return nil, false, fmt.Errorf("%w: executor %q belongs to another identity; %s may not register it", ErrPermission, id, owner)
		}
		if claimed {
			return nil, false, fmt.Errorf("%w: executor %q is being registered by another call; retry", ErrConflict, id)
		}
		return x, false, nil
	}
	if quota > 0 && e.owned[owner] >= quota {
		return nil, false, fmt.Errorf("%w: %s owns %d executors, its quota; `dynoctl executors remove` frees some", ErrQuota, owner, e.owned[owner])
	}
	x = &execState{limiter: newTokenBucket(rate, burst), claimed: true}
	x.rec = store.Executor{ID: id, Owner: owner}
	e.m[id] = x
	e.owned[owner]++
	return x, true, nil
}

// unclaim forgets a claim whose registration failed.
func (e *executors) unclaim(x *execState) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.m[x.rec.ID] == x {
		delete(e.m, x.rec.ID)
		e.owned[x.rec.Owner]--
	}
}

// set replaces the record of a claimed or existing executor.
func (e *executors) set(x *execState, rec store.Executor) {
	x.mu.Lock()
	x.rec = rec
	x.claimed = false
	x.mu.Unlock()
}

// put adds or replaces the record of an executor (restore).
func (e *executors) put(rec store.Executor, rate float64, burst int) *execState {
	e.mu.Lock()
	defer e.mu.Unlock()
	x := e.m[rec.ID]
	if x == nil {
		x = &execState{limiter: newTokenBucket(rate, burst)}
		e.m[rec.ID] = x
		e.owned[rec.OwnerOf()]++
	}
	x.mu.Lock()
	x.rec = rec
	x.mu.Unlock()
	return x
}

// remove takes executors out; it returns those it removed.
func (e *executors) remove(ids []string) []*execState {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []*execState
	for _, id := range ids {
		x := e.m[id]
		if x == nil {
			continue
		}
		x.mu.Lock()
		claimed := x.claimed
		if !claimed {
			x.removed = true
		}
		owner := x.rec.OwnerOf()
		x.mu.Unlock()
		if claimed {
			continue
		}
		delete(e.m, id)
		e.owned[owner]--
		out = append(out, x)
	}
	return out
}

// stale lists the executors last seen before t and not connected now.
func (e *executors) stale(t time.Time) []string {
	var out []string
	for _, x := range e.list() {
		x.mu.Lock()
		if x.connected == 0 && x.rec.LastSeen.Before(t) {
			out = append(out, x.rec.ID)
		}
		x.mu.Unlock()
	}
	return out
}

// list returns every executor whose registration is committed, by id.
func (e *executors) list() []*execState {
	e.mu.Lock()
	out := make([]*execState, 0, len(e.m))
	for _, x := range e.m {
		out = append(out, x)
	}
	e.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].rec.ID < out[j].rec.ID })
	j := 0
	for _, x := range out {
		x.mu.Lock()
		if !x.claimed {
			out[j] = x
			j++
		}
		x.mu.Unlock()
	}
	return out[:j]
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
		if x.dirty && !x.removed {
			out = append(out, x.rec)
			x.dirty = false
		}
		x.mu.Unlock()
	}
	return out
}

// seen notes applied reports; reports is the executor's count of applied
// reports as committed.
func (x *execState) seen(now time.Time, reports, through uint64) {
	x.mu.Lock()
	x.rec.LastSeen = now
	x.rec.Reports = max(x.rec.Reports, reports)
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
