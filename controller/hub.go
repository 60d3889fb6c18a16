package controller

import (
	"sync"
	"sync/atomic"
)

// hub fans published versions out to the watchers of each key. Publishing
// never waits for a watcher: each watcher keeps only the newest version of
// each key it has not sent yet, so a slow watcher skips versions and gets
// the latest, and never holds up the others. It is safe for concurrent use.
type hub struct {
	mu     sync.Mutex
	latest map[string]*published
	subs   map[string]map[*watcher]struct{}
	all    map[*watcher]struct{}
	closed bool
	count  atomic.Int64
}

func newHub() *hub {
	return &hub{latest: map[string]*published{}, subs: map[string]map[*watcher]struct{}{}}
}

// watcher is one WatchPolicies stream.
type watcher struct {
	mu      sync.Mutex
	pending map[string]*published
	keys    map[string]bool
	// wake tells the watcher's sender that there is something to send, or
	// that closing is set. Each watcher waits on its own channels only: a
	// channel shared by a thousand senders would serialise them on its
	// lock.
	wake    chan struct{}
	closing atomic.Bool
}

func newWatcher() *watcher {
	return &watcher{pending: map[string]*published{}, keys: map[string]bool{}, wake: make(chan struct{}, 1)}
}

// offer makes p the next version of its key to send.
func (w *watcher) offer(p *published) {
	w.mu.Lock()
	if old := w.pending[p.pol.Key]; old == nil || old.pol.Version < p.pol.Version {
		w.pending[p.pol.Key] = p
	}
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// take returns the versions to send and forgets them.
func (w *watcher) take(dst []*published) []*published {
	w.mu.Lock()
	for k, p := range w.pending {
		dst = append(dst, p)
		delete(w.pending, k)
	}
	w.mu.Unlock()
	return dst
}

// publish records p as the latest version of its key and offers it to the
// key's watchers.
func (h *hub) publish(p *published) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if old := h.latest[p.pol.Key]; old != nil && old.pol.Version >= p.pol.Version {
		return
	}
	h.latest[p.pol.Key] = p
	for w := range h.subs[p.pol.Key] {
		w.offer(p)
	}
}

// seed records a version loaded from the store at start.
func (h *hub) seed(p *published) {
	h.mu.Lock()
	h.latest[p.pol.Key] = p
	h.mu.Unlock()
}

// add registers a watcher, so that closeAll reaches it even before it
// subscribes to a key.
func (h *hub) add(w *watcher) {
	h.mu.Lock()
	if h.all == nil {
		h.all = map[*watcher]struct{}{}
	}
	h.all[w] = struct{}{}
	closed := h.closed
	h.mu.Unlock()
	if closed {
		w.close()
	}
}

// closeAll tells every watcher to end its stream (the controller is
// stopping).
func (h *hub) closeAll() {
	h.mu.Lock()
	h.closed = true
	ws := make([]*watcher, 0, len(h.all))
	for w := range h.all {
		ws = append(ws, w)
	}
	h.mu.Unlock()
	for _, w := range ws {
		w.close()
	}
}

func (w *watcher) close() {
	w.closing.Store(true)
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// subscribe adds w to the watchers of key and offers it the latest version
// unless it already holds it (have).
func (h *hub) subscribe(w *watcher, key string, have uint64) {
	h.mu.Lock()
	m := h.subs[key]
	if m == nil {
		m = map[*watcher]struct{}{}
		h.subs[key] = m
	}
	if _, ok := m[w]; !ok {
		m[w] = struct{}{}
		h.count.Add(1)
	}
	latest := h.latest[key]
	h.mu.Unlock()
	w.mu.Lock()
	w.keys[key] = true
	w.mu.Unlock()
	if latest != nil && latest.pol.Version != have {
		w.offer(latest)
	}
}

// remove drops w from every key it watches.
func (h *hub) remove(w *watcher) {
	w.mu.Lock()
	keys := make([]string, 0, len(w.keys))
	for k := range w.keys {
		keys = append(keys, k)
	}
	w.mu.Unlock()
	h.mu.Lock()
	for _, k := range keys {
		if _, ok := h.subs[k][w]; ok {
			delete(h.subs[k], w)
			h.count.Add(-1)
		}
	}
	delete(h.all, w)
	h.mu.Unlock()
}

// watchers counts the watchers of key.
func (h *hub) watchers(key string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.subs[key])
}
