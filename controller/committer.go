package controller

import (
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dynoml/dyno/store"
)

// request is one unit of work for the committer: a batch of reports, or a
// write of anything else (a checkpoint of a key, a registration, an
// operator's change).
type request struct {
	// reports, when set, is a batch to deduplicate and append.
	reports *reportsReq
	// apply writes in the group's transaction. An error aborts the whole
	// transaction and stops the controller (the store is failing): outcomes
	// that are not failures of the store must not be returned here.
	apply func(tx *store.Tx) error
	// after runs once the transaction has committed (err nil) or failed.
	// It runs on the committer's goroutine and must not block.
	after func(err error)
	// ckptKey and ckptSeq say that this request checkpoints a key's state
	// up to trace ckptSeq (see committer.replayFrom).
	ckptKey string
	ckptSeq uint64
}

// reportsReq is a validated batch and, after the commit, its outcome.
type reportsReq struct {
	exec  string
	items []item
	// Set by the committer.
	accepted, duplicates int
	through              uint64
	// reports is the executor's count of applied reports, as committed.
	reports uint64
	err     error
	done    chan struct{}
}

// committer is the one writer of the store. It groups what arrives while a
// commit is in flight into the next transaction, so that one fsync covers
// many batches, and acknowledges nothing before its commit. It owns the
// report windows of the executors and the bookkeeping of where a restart
// must replay the trace log from.
type committer struct {
	st       *store.Store
	log      *slog.Logger
	maxGroup int
	in       chan *request
	// side carries checkpoints from the learners; it never blocks them,
	// so that the committer may wait for the learners without deadlock.
	sideMu   sync.Mutex
	side     []*request
	sideWake chan struct{}

	windows      map[string]*store.Window
	dirtyWindows map[string]*store.Window
	// counts is, per executor, the reports applied from it: committed in
	// the transaction that appends them, so that it equals the trace log
	// after any crash.
	counts map[string]uint64
	// ckptSeq is, per key, the last trace applied in its last committed
	// checkpoint; lastSeq the last trace of the key committed.
	ckptSeq map[string]uint64
	lastSeq map[string]uint64

	dispatch func(byKey map[*keyEntry][]*item)
	periodic func() *request
	period   time.Duration

	stop    chan struct{}
	stopped chan struct{}
	failed  atomic.Pointer[error]

	commits atomic.Uint64
}

func newCommitter(st *store.Store, log *slog.Logger, maxGroup int) *committer {
	return &committer{
		st: st, log: log, maxGroup: maxGroup,
		in:       make(chan *request, 1024),
		sideWake: make(chan struct{}, 1),
		windows:  map[string]*store.Window{}, dirtyWindows: map[string]*store.Window{}, counts: map[string]uint64{},
		ckptSeq: map[string]uint64{}, lastSeq: map[string]uint64{},
		period: time.Second,
		stop:   make(chan struct{}), stopped: make(chan struct{}),
	}
}

// err is the failure that stopped the committer, if any.
func (c *committer) err() error {
	if e := c.failed.Load(); e != nil {
		return *e
	}
	return nil
}

// submit queues r. It fails once the committer is stopping or has failed.
func (c *committer) submit(r *request) error {
	if err := c.err(); err != nil {
		return fmt.Errorf("%w: %v", ErrStopping, err)
	}
	select {
	case c.in <- r:
		return nil
	case <-c.stop:
		return fmt.Errorf("%w: shutting down", ErrStopping)
	}
}

// submitSide queues a learner's checkpoint without blocking.
func (c *committer) submitSide(r *request) {
	c.sideMu.Lock()
	c.side = append(c.side, r)
	c.sideMu.Unlock()
	select {
	case c.sideWake <- struct{}{}:
	default:
	}
}

func (c *committer) takeSide(group []*request) []*request {
	c.sideMu.Lock()
	group = append(group, c.side...)
	c.side = c.side[:0]
	c.sideMu.Unlock()
	return group
}

// run commits until stop is closed and everything queued is written. It
// returns the store's error if a commit fails.
func (c *committer) run() error {
	defer close(c.stopped)
	tick := time.NewTicker(c.period)
	defer tick.Stop()
	for {
		group := c.takeSide(nil)
		stopping := false
		if len(group) == 0 {
			select {
			case r := <-c.in:
				group = append(group, r)
			case <-c.sideWake:
				group = c.takeSide(group)
			case <-tick.C:
				if c.periodic != nil {
					if r := c.periodic(); r != nil {
						group = append(group, r)
					}
				}
			case <-c.stop:
				stopping = true
			}
		}
		group = c.drain(group)
		if !stopping {
			// Housekeeping also runs under a steady load, when the
			// select above always finds work.
			select {
			case <-tick.C:
				if c.periodic != nil {
					if r := c.periodic(); r != nil {
						group = append(group, r)
					}
				}
			default:
			}
		}
		if stopping {
			// Write what is queued and the housekeeping, then stop.
			group = c.takeSide(c.drain(group))
			if c.periodic != nil {
				if r := c.periodic(); r != nil {
					group = append(group, r)
				}
			}
			if len(group) > 0 {
				if err := c.commit(group); err != nil {
					return err
				}
			}
			return nil
		}
		if len(group) == 0 {
			continue
		}
		if err := c.commit(group); err != nil {
			return err
		}
	}
}

// drain adds what is waiting, up to the group limit.
func (c *committer) drain(group []*request) []*request {
	n := 0
	for _, r := range group {
		if r.reports != nil {
			n += len(r.reports.items)
		}
	}
	for n < c.maxGroup {
		select {
		case r := <-c.in:
			group = append(group, r)
			if r.reports != nil {
				n += len(r.reports.items)
			}
		default:
			return group
		}
	}
	return group
}

// commit writes a group in one transaction, then acknowledges it and hands
// its reports to the learners.
func (c *committer) commit(group []*request) error {
	reports := 0
	err := c.st.Update(func(tx *store.Tx) error {
		for _, r := range group {
			if r.reports != nil {
				if err := c.appendReports(tx, r.reports); err != nil {
					return err
				}
				reports += len(r.reports.items)
			}
			if r.apply != nil {
				if err := r.apply(tx); err != nil {
					return err
				}
			}
		}
		for exec, w := range c.dirtyWindows {
			if err := tx.PutWindow(exec, w); err != nil {
				return err
			}
			if err := tx.PutReportCount(exec, c.counts[exec]); err != nil {
				return err
			}
			delete(c.dirtyWindows, exec)
		}
		return tx.PutReplayFrom(c.replayFrom(tx))
	})
	if err != nil {
		err = fmt.Errorf("commit: %w", err)
		c.failed.Store(&err)
		c.log.Error("store commit failed: the controller stops; restart it to recover from the last commit", "err", err)
		for _, r := range group {
			if r.reports != nil {
				r.reports.err = fmt.Errorf("%w: %v", ErrStopping, err)
				close(r.reports.done)
			}
			if r.after != nil {
				r.after(err)
			}
		}
		return err
	}
	c.commits.Add(1)
	byKey := map[*keyEntry][]*item{}
	for _, r := range group {
		if r.ckptKey != "" {
			c.ckptSeq[r.ckptKey] = max(c.ckptSeq[r.ckptKey], r.ckptSeq)
		}
		if rr := r.reports; rr != nil {
			for i := range rr.items {
				if it := &rr.items[i]; it.seq != 0 {
					byKey[it.key] = append(byKey[it.key], it)
				}
			}
			close(rr.done)
		}
		if r.after != nil {
			r.after(nil)
		}
	}
	if len(byKey) > 0 {
		c.dispatch(byKey)
	}
	return nil
}

// appendReports drops the reports already applied and appends the others
// to the trace log.
func (c *committer) appendReports(tx *store.Tx, rr *reportsReq) error {
	w := c.windows[rr.exec]
	if w == nil {
		loaded, err := tx.Window(rr.exec)
		if err != nil {
			return err
		}
		w = &loaded
		c.windows[rr.exec] = w
		n, err := tx.ReportCount(rr.exec)
		if err != nil {
			return err
		}
		c.counts[rr.exec] = n
	}
	// A number far beyond the window is refused, batch and all: taken, it
	// would move the window past every report still to come.
	for i := range rr.items {
		if seq := rr.items[i].reportSeq; seq > w.Through && seq-w.Through > store.MaxSeqStep {
			rr.err = badField(fmt.Sprintf("reports[%d]: seq", i), "%d is %d beyond the executor's acknowledged %d; a seq may move at most %d ahead", seq, seq-w.Through, w.Through, store.MaxSeqStep)
			rr.through, rr.reports = w.Through, c.counts[rr.exec]
			return nil
		}
	}
	idx := make([]int, 0, len(rr.items))
	encoded := make([][]byte, 0, len(rr.items))
	for i := range rr.items {
		it := &rr.items[i]
		if !w.Add(it.reportSeq) {
			rr.duplicates++
			continue
		}
		idx = append(idx, i)
		encoded = append(encoded, it.trace)
	}
	// The batch's new reports go into the log as one block.
	first, err := tx.AppendTraces(encoded)
	if err != nil {
		return err
	}
	for j, i := range idx {
		it := &rr.items[i]
		it.seq = first + uint64(j)
		c.lastSeq[it.key.name] = it.seq
	}
	rr.accepted = len(idx)
	c.counts[rr.exec] += uint64(len(idx))
	c.dirtyWindows[rr.exec] = w
	rr.through, rr.reports = w.Through, c.counts[rr.exec]
	return nil
}

// replayFrom is the first trace a restart must replay: the oldest trace
// committed after the last checkpoint of its key.
func (c *committer) replayFrom(tx *store.Tx) uint64 {
	from := tx.Traces().NextSeq
	for key, last := range c.lastSeq {
		if ck := c.ckptSeq[key]; last > ck && ck+1 < from {
			from = ck + 1
		}
	}
	return from
}

// through returns the executor's acknowledged window, for Register. It must
// run on the committer's goroutine (inside an apply).
func (c *committer) through(tx *store.Tx, exec string) (uint64, error) {
	if w := c.windows[exec]; w != nil {
		return w.Through, nil
	}
	w, err := tx.Window(exec)
	return w.Through, err
}

// count returns the executor's count of applied reports. It must run on
// the committer's goroutine (inside an apply).
func (c *committer) count(tx *store.Tx, exec string) (uint64, error) {
	if _, ok := c.windows[exec]; ok {
		return c.counts[exec], nil
	}
	return tx.ReportCount(exec)
}

// forget drops what the committer holds of removed executors. It must run
// on the committer's goroutine (inside an apply).
func (c *committer) forget(ids []string) {
	for _, id := range ids {
		delete(c.windows, id)
		delete(c.dirtyWindows, id)
		delete(c.counts, id)
	}
}

// close stops the committer after it has written what is queued and
// returns its error.
func (c *committer) close() error {
	select {
	case <-c.stop:
	default:
		close(c.stop)
	}
	<-c.stopped
	return c.err()
}

// wait blocks until the batch is committed or the committer has stopped.
func (c *committer) wait(rr *reportsReq) error {
	select {
	case <-rr.done:
		return rr.err
	case <-c.stopped:
		select {
		case <-rr.done:
			return rr.err
		default:
			return fmt.Errorf("%w: shutting down", ErrStopping)
		}
	}
}

// write submits a write and waits for its commit.
func (c *committer) write(apply func(tx *store.Tx) error) error {
	done := make(chan error, 1)
	if err := c.submit(&request{apply: apply, after: func(err error) { done <- err }}); err != nil {
		return err
	}
	return c.waitErr(done)
}

// waitErr waits for an after callback's result or the committer's end.
func (c *committer) waitErr(done <-chan error) error {
	select {
	case err := <-done:
		return storeErr(err)
	case <-c.stopped:
		select {
		case err := <-done:
			return storeErr(err)
		default:
			return fmt.Errorf("%w: shutting down", ErrStopping)
		}
	}
}

func storeErr(err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%w: %v", ErrStopping, err)
}
