package device

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/dynoml/dyno/api"
	"github.com/dynoml/dyno/executor/link"
)

// Errors of the application API, tested with errors.Is; the gRPC adapter
// maps each to its status code (see statusOf).
var (
	// ErrInvalid is a request the executor cannot serve as asked: wrong
	// dtype, shape or size, a NaN, a model it does not serve, a request
	// id in use.
	ErrInvalid = errors.New("device: invalid request")
	// ErrBusy is a request beyond the depth of the pipeline.
	ErrBusy = errors.New("device: too many requests in flight")
	// ErrUnknownRequest is feedback for a request id the executor has not
	// served (or not recently enough to remember it).
	ErrUnknownRequest = errors.New("device: unknown request")
	// ErrFeedbackClosed is feedback for a request whose report can no
	// longer take it: it went without feedback when its window closed, or
	// it already has its accuracy signal.
	ErrFeedbackClosed = errors.New("device: feedback closed")
	// ErrStopped is a request to an executor not started or stopped.
	ErrStopped = errors.New("device: executor not serving")
)

// heldReport is a report waiting for feedback.
type heldReport struct {
	id    string
	rep   *api.Report
	out   []float32 // the output, for feedback that gives labels (nil under a dense metric)
	until time.Time
	done  bool
}

// gone is why feedback for a request recently released is refused.
type gone struct {
	id  string
	why string
}

// book holds the reports of requests waiting for feedback, each until its
// window closes, and the ids of requests in flight. It is safe for
// concurrent use; release (the reporter's add) is called under its lock,
// so that reports released by different goroutines take their seqs in the
// order they leave.
type book struct {
	window  time.Duration
	max     int
	release func(*api.Report)

	mu     sync.Mutex
	active map[string]bool // accepted, not yet answered
	held   map[string]*heldReport
	queue  []*heldReport // in the order they came, which is their deadlines' order
	gone   map[string]*gone
	goneQ  []*gone
}

func newBook(window time.Duration, max int, release func(*api.Report)) *book {
	return &book{window: window, max: max, release: release,
		active: map[string]bool{}, held: map[string]*heldReport{}, gone: map[string]*gone{}}
}

// reserve claims id for a request about to be served.
func (b *book) reserve(id string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.active[id] || b.held[id] != nil {
		return fmt.Errorf("%w: request_id %q is already in use by a request in flight or waiting for feedback", ErrInvalid, id)
	}
	b.active[id] = true
	delete(b.gone, id)
	return nil
}

// abandon frees the id of a request that produced no report.
func (b *book) abandon(id string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.active, id)
}

// finish takes a served request's report: held for feedback until until
// when wait is set (and the window is not zero), else released now.
func (b *book) finish(id string, rep *api.Report, out []float32, wait bool, until time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.active, id)
	if !wait || b.window <= 0 {
		b.release(rep)
		b.forget(id, "its report already has its accuracy signal (a label came with the request)")
		return
	}
	h := &heldReport{id: id, rep: rep, out: out, until: until}
	b.held[id] = h
	b.queue = append(b.queue, h)
	for len(b.held) > b.max {
		b.pop("its report went without feedback: too many reports were waiting")
	}
}

// pop releases the oldest held report without feedback.
func (b *book) pop(why string) {
	for len(b.queue) > 0 {
		h := b.queue[0]
		b.queue[0] = nil
		b.queue = b.queue[1:]
		if h.done {
			continue
		}
		h.done = true
		delete(b.held, h.id)
		b.release(h.rep)
		b.forget(h.id, why)
		return
	}
}

// forget remembers, for a while, why feedback for id is refused.
func (b *book) forget(id, why string) {
	if b.window <= 0 {
		return
	}
	g := &gone{id: id, why: why}
	b.gone[id] = g
	b.goneQ = append(b.goneQ, g)
	for len(b.goneQ) > b.max {
		if old := b.goneQ[0]; b.gone[old.id] == old {
			delete(b.gone, old.id)
		}
		b.goneQ[0] = nil
		b.goneQ = b.goneQ[1:]
	}
}

// feedback sets the accuracy of the held report of id with signal (which
// turns the output into the signal in [0, 1]) and releases it.
func (b *book) feedback(id string, signal func(out []float32) (float64, error)) (float64, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	h := b.held[id]
	if h == nil {
		if g := b.gone[id]; g != nil {
			return 0, fmt.Errorf("%w: request %q: %s", ErrFeedbackClosed, id, g.why)
		}
		if b.active[id] {
			return 0, fmt.Errorf("%w: request %q is still being served; send its feedback once it is answered", ErrFeedbackClosed, id)
		}
		if b.window <= 0 {
			return 0, fmt.Errorf("%w: request %q: this executor takes no feedback (its feedback window is zero)", ErrFeedbackClosed, id)
		}
		return 0, fmt.Errorf("%w: request_id %q: no request of that id was served in the last %v", ErrUnknownRequest, id, b.window)
	}
	v, err := signal(h.out)
	if err != nil {
		return 0, err
	}
	h.done = true
	delete(b.held, id)
	h.rep.Accuracy = &v
	h.rep.AccuracyShadow = false
	b.release(h.rep)
	b.forget(id, "its report already has its accuracy signal (feedback came before)")
	return v, nil
}

// sweep releases the held reports whose window closed by now.
func (b *book) sweep(now time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for len(b.queue) > 0 && (b.queue[0].done || !b.queue[0].until.After(now)) {
		b.pop(fmt.Sprintf("its report went without feedback when its window of %v closed", b.window))
	}
}

// releaseAll releases every held report without feedback (the executor
// stops).
func (b *book) releaseAll() {
	b.mu.Lock()
	defer b.mu.Unlock()
	for len(b.queue) > 0 {
		b.pop("its report went without feedback when the executor stopped")
	}
}

// waiting counts the reports waiting for feedback.
func (b *book) waiting() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.held)
}

// run sweeps until ctx ends, a few times per window.
func (b *book) run(ctx context.Context) {
	if b.window <= 0 {
		return
	}
	tick := min(max(b.window/8, time.Millisecond), 100*time.Millisecond)
	for link.SleepContext(ctx, tick) == nil {
		b.sweep(time.Now())
	}
}
