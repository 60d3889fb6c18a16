package bandit

import (
	"fmt"
	"slices"
)

// A link posterior per executor, in a hierarchy over the class's.
//
// What depends on the device class and the cloud (compute, queue,
// accuracy) is learned across the fleet of a key. What depends on the link
// (the transfer and the round trip) differs between executors of one class
// on different networks, so each executor that reports has its own
// posterior of those two stages. It starts as a copy of the class's (the
// class's link posterior, learned from every executor's reports, is the
// population's), loosened by DynoConfig.LinkSpread so that its own reports
// can move it away, and from then on learns from that executor's reports
// only. An executor that has never reported decides with the class's.
//
// The published policy carries every executor's link posterior (a few
// hundred bytes each); an executor restoring it calls SetExecutor with its
// own id, and Choose then reads its link stages from that executor's
// posterior.

// linkStages are the stages learned per executor.
var linkStages = [2]int{stT, stR}

// maxExecutors bounds the link posteriors one policy keeps; reports of
// further executors teach the class's only.
const maxExecutors = 4096

// maxExecutorID bounds an executor id in the serialised state.
const maxExecutorID = 256

// linkState is one executor's posterior of the link stages.
type linkState struct {
	models [2]*blr
	noise  [2]float64
	det    [2]float64
	// n counts the executor's reports; seen is, per stage and
	// coefficient, the count at the last report that excited it. The
	// executor's link regrows on its own clock: a phone reporting a
	// quarter of a key's reports must not forget four times as fast.
	n    uint64
	seen [2][stageDim]uint64
}

// linkIndex maps a stage to its index in linkStages, or -1.
func linkIndex(k int) int {
	switch k {
	case stT:
		return 0
	case stR:
		return 1
	}
	return -1
}

// SetExecutor makes Choose decide with executor id's link posterior (the
// class's while it has none). The empty id decides with the class's.
func (p *Dyno) SetExecutor(id string) {
	p.selfID = id
	p.self = p.links[id]
}

// Executors lists the executors with a link posterior of their own, in
// order.
func (p *Dyno) Executors() []string { return slices.Clone(p.linkIDs) }

// stage returns the regression Choose uses for stage k: the executor's own
// for the link stages when it has one.
func (p *Dyno) stage(k int) *blr {
	if p.self != nil {
		if j := linkIndex(k); j >= 0 {
			return p.self.models[j]
		}
	}
	return p.models[k]
}

// link returns executor id's link posterior, creating it from the class's
// at its first report; nil when the id is empty or the policy keeps
// maxExecutors already.
func (p *Dyno) link(id string) *linkState {
	if id == "" {
		return nil
	}
	if l := p.links[id]; l != nil {
		return l
	}
	if len(p.links) >= maxExecutors || len(id) > maxExecutorID {
		return nil
	}
	l := &linkState{}
	sd := p.priorSD()
	for j, k := range linkStages {
		m := p.models[k].clone()
		var q, cp [stageDim]float64
		for c := 0; c < dims[k]; c++ {
			v := p.cfg.LinkSpread * sd[k][c]
			q[c], cp[c] = v*v, sd[k][c]*sd[k][c]
		}
		m.drift(q[:dims[k]], cp[:dims[k]])
		l.models[j] = m
		l.noise[j] = p.noise[k]
	}
	if p.links == nil {
		p.links = map[string]*linkState{}
	}
	p.links[id] = l
	i, _ := slices.BinarySearch(p.linkIDs, id)
	p.linkIDs = slices.Insert(p.linkIDs, i, id)
	if id == p.selfID {
		p.self = l
	}
	return l
}

// learnLink updates executor l's link stage k from one standardised
// observation.
func (p *Dyno) learnLink(l *linkState, k int, x []float64, y float64) {
	j := linkIndex(k)
	m := l.models[j]
	sig2 := l.noise[j]
	p.fit(m, &l.noise[j], &l.det[j], x, y, 0, 0)
	p.learnNoise(m, &l.noise[j], sig2, x, y, 0)
	for c, v := range x {
		if v > excited || v < -excited {
			l.seen[j][c] = l.n
		}
	}
}

// countLink counts one report of executor l, and applies regrow's process
// noise to its link stages every driftEvery of its reports.
func (p *Dyno) countLink(l *linkState) {
	l.n++
	if l.n%driftEvery != 0 {
		return
	}
	for j, k := range linkStages {
		m := l.models[j]
		m.drift(p.driftQ[k], p.driftCap[k])
		var q, cp [stageDim]float64
		for c := 0; c < dims[k]; c++ {
			if float64(l.n-l.seen[j][c]) <= p.cfg.RegrowAfter {
				continue
			}
			cp[c] = p.regrowVar(k, c, m.meanAt(c))
			q[c] = driftEvery * cp[c] / p.cfg.Regrow
		}
		m.drift(q[:dims[k]], cp[:dims[k]])
	}
}

// encodeLinks writes every executor's link posterior, in id order.
func (p *Dyno) encodeLinks(e *encoder) {
	e.u32(uint32(len(p.linkIDs)))
	for _, id := range p.linkIDs {
		l := p.links[id]
		e.str(id)
		e.u64(l.n)
		for j := range linkStages {
			l.models[j].encode(e)
			e.f64(l.noise[j])
			e.f64(l.det[j])
			for c := 0; c < dims[linkStages[j]]; c++ {
				e.u64(l.seen[j][c])
			}
		}
	}
}

// decodeLinks reads what encodeLinks wrote.
func (p *Dyno) decodeLinks(d *decoder, version uint64) {
	n := int(d.u32("dyno.links"))
	if d.err != nil {
		return
	}
	if n > maxExecutors {
		d.fail("dyno.links: %d executors, at most %d", n, maxExecutors)
		return
	}
	for range n {
		id := d.str("dyno.link.id")
		if d.err != nil {
			return
		}
		if id == "" || len(id) > maxExecutorID || len(p.linkIDs) > 0 && id <= p.linkIDs[len(p.linkIDs)-1] {
			d.fail("dyno.link.id: %q is empty, too long or out of order", id)
			return
		}
		l := &linkState{n: d.u64("dyno.link.reports")}
		sd := p.priorSD()
		for j, k := range linkStages {
			what := fmt.Sprintf("dyno.link.%s", stageNames[k])
			l.models[j] = newBLR(make([]float64, dims[k]), sd[k][:dims[k]])
			l.models[j].decode(d, what)
			l.noise[j] = d.finite(what + ".noise")
			l.det[j] = d.finite(what + ".detector")
			for c := 0; c < dims[k]; c++ {
				l.seen[j][c] = d.u64(what + ".seen")
				if d.err == nil && (l.seen[j][c] > l.n || l.n > version) {
					d.fail("%s.seen: %d, reports %d, version %d out of order", what, l.seen[j][c], l.n, version)
				}
			}
			if d.err == nil && !(l.noise[j] > 0) {
				d.fail("%s.noise: %g is not positive", what, l.noise[j])
			}
		}
		if d.err != nil {
			return
		}
		if p.links == nil {
			p.links = map[string]*linkState{}
		}
		p.links[id] = l
		p.linkIDs = append(p.linkIDs, id)
	}
}

// LinkPosterior returns the posterior means of executor id's own transfer
// and round-trip coefficients, and whether it has a link posterior of its
// own.
func (p *Dyno) LinkPosterior(id string) (transfer, rtt [2]float64, ok bool) {
	l := p.links[id]
	if l == nil {
		return transfer, rtt, false
	}
	for c := 0; c < dims[stT]; c++ {
		transfer[c] = l.models[0].meanAt(c)
	}
	for c := 0; c < dims[stR]; c++ {
		rtt[c] = l.models[1].meanAt(c)
	}
	return transfer, rtt, true
}
