package model

import (
	"fmt"
	"slices"
	"strings"
)

// Cut points are found with dominators. In the graph whose vertices are the
// tensors that depend on the input, with an edge from every input of a node
// to each of its outputs, a tensor is a cut point exactly when it dominates
// the output: every path from the input to the output passes through it.
// Constants (initializers and what is computed from them alone) carry no
// path from the input, so they are left out; each block takes the constants
// it needs. The dominators of the output form a chain, input first, which is
// the order of the blocks.

// dominators computes the immediate dominator of every dynamic tensor,
// visiting nodes in topological order (the tensor graph is a DAG, so one
// pass suffices).
func (g *Graph) dominators() (idom map[string]string, depth map[string]int) {
	idom = map[string]string{g.input: g.input}
	depth = map[string]int{g.input: 0}
	lca := func(a, b string) string {
		for a != b {
			if depth[a] >= depth[b] {
				a = idom[a]
			} else {
				b = idom[b]
			}
		}
		return a
	}
	for _, n := range g.nodes {
		d := ""
		for _, in := range g.reads(n) {
			if in == "" || !g.dynamic[in] {
				continue
			}
			if d == "" {
				d = in
			} else {
				d = lca(d, in)
			}
		}
		if d == "" {
			continue // a constant node
		}
		for _, o := range n.GetOutput() {
			if o != "" && g.dynamic[o] {
				idom[o] = d
				depth[o] = depth[d] + 1
			}
		}
	}
	return idom, depth
}

// chain returns the dominators of the output from the input to the output,
// both included.
func (g *Graph) chain(idom map[string]string) []string {
	var rev []string
	for t := g.output; ; t = idom[t] {
		rev = append(rev, t)
		if t == g.input {
			break
		}
	}
	out := make([]string, len(rev))
	for i, t := range rev {
		out[len(rev)-1-i] = t
	}
	return out
}

// segments assigns every dynamic node to the stretch of the chain it lies
// in: segment j holds the nodes after chain[j-1] up to and including the
// producer of chain[j]. Constant nodes get 0.
func (g *Graph) segments(idom map[string]string, chain []string) []int {
	pos := map[string]int{}
	for i, t := range chain {
		pos[t] = i
	}
	seg := make([]int, len(g.nodes))
	for i, n := range g.nodes {
		for _, o := range n.GetOutput() {
			if o == "" || !g.dynamic[o] {
				continue
			}
			if j, ok := pos[o]; ok {
				seg[i] = j
				break
			}
			// The nearest cut that dominates o precedes it; o lies in the
			// segment after that cut.
			t := idom[o]
			for {
				if j, ok := pos[t]; ok {
					seg[i] = j + 1
					break
				}
				t = idom[t]
			}
			break
		}
	}
	return seg
}

// findCuts lists the interior cut points with the FLOPs before each.
func (g *Graph) findCuts() []CutPoint {
	idom, _ := g.dominators()
	g.domChain = g.chain(idom)
	g.seg = g.segments(idom, g.domChain)
	chain, seg := g.domChain, g.seg
	segFLOPs := make([]int64, len(chain))
	segCost := make([]int64, len(chain))
	segPartial := make([]bool, len(chain))
	for i, s := range seg {
		if !g.nodeDynamic(i) {
			continue // constant nodes run once per block, and are not counted
		}
		segFLOPs[s] += g.flops[i]
		segCost[s] += g.cost[i]
		segPartial[s] = segPartial[s] || g.uncounted[i]
	}
	consumers := map[string][]int{}
	for i, n := range g.nodes {
		seen := map[string]bool{}
		for _, in := range g.reads(n) {
			if in != "" && !seen[in] {
				seen[in] = true
				consumers[in] = append(consumers[in], i)
			}
		}
	}
	onChain := map[string]bool{}
	for _, t := range chain {
		onChain[t] = true
	}
	var cuts []CutPoint
	var before, cost int64
	partial := false
	for j := 1; j < len(chain)-1; j++ {
		before += segFLOPs[j]
		cost += segCost[j]
		partial = partial || segPartial[j]
		t := chain[j]
		ti := g.info[t]
		if !g.sendable(t) {
			continue // only non-empty float32 activations of a static shape can be packed and sent
		}
		c := CutPoint{Tensor: NewTensor(t, ti.shape...), FLOPsBefore: before, FLOPsPartial: partial, CostBefore: cost, Op: g.nodes[g.producer[t]].GetOpType()}
		if us := consumers[t]; len(us) == 1 {
			u := g.nodes[us[0]]
			if activationOps[u.GetOpType()] && len(u.GetOutput()) > 0 && onChain[u.GetOutput()[0]] {
				c.Activation = true
			}
		}
		cuts = append(cuts, c)
	}
	return cuts
}

// Stretch is a part of the graph between two consecutive cut points that
// holds more than one node and no cut point inside: the graph cannot be cut
// there, and Reason says why (parallel paths such as a skip connection or
// a multi-branch block, or single tensors that are not float32).
type Stretch struct {
	// From and To are the cut points (or the input and output) around it.
	From, To string
	Nodes    int
	// Ops counts the stretch's operators, e.g. "Add:1 Conv:2".
	Ops    string
	Reason string
}

// Stretches lists the stretches of the graph without a cut point, in order
// from the input.
func (g *Graph) Stretches() []Stretch {
	chain, seg := g.domChain, g.seg
	cut := map[int]bool{0: true, len(chain) - 1: true}
	for j := 1; j < len(chain)-1; j++ {
		cut[j] = g.sendable(chain[j])
	}
	read := map[string]bool{}
	for _, n := range g.nodes {
		for _, t := range g.reads(n) {
			read[t] = true
		}
	}
	var out []Stretch
	from := 0
	for j := 1; j < len(chain); j++ {
		if !cut[j] {
			continue
		}
		var nodes []int
		for i := range g.nodes {
			if g.nodeDynamic(i) && seg[i] > from && seg[i] <= j {
				nodes = append(nodes, i)
			}
		}
		if len(nodes) > 1 && (j-from > 1 || g.parallel(nodes, chain[from:j+1], read)) {
			out = append(out, g.stretch(chain, from, j, nodes, read))
		}
		from = j
	}
	return out
}

// parallel reports whether the nodes form more than a simple chain through
// the given chain tensors: some node's output is not on the chain.
func (g *Graph) parallel(nodes []int, chain []string, read map[string]bool) bool {
	on := map[string]bool{}
	for _, t := range chain {
		on[t] = true
	}
	for _, i := range nodes {
		for _, o := range g.nodes[i].GetOutput() {
			if o != "" && g.dynamic[o] && !on[o] && read[o] {
				return true
			}
		}
	}
	return false
}

func (g *Graph) stretch(chain []string, from, to int, nodes []int, read map[string]bool) Stretch {
	counts := map[string]int{}
	for _, i := range nodes {
		counts[g.nodes[i].GetOpType()]++
	}
	var ops []string
	for k, v := range counts {
		ops = append(ops, fmt.Sprintf("%s:%d", k, v))
	}
	slices.Sort(ops)
	st := Stretch{From: chain[from], To: chain[to], Nodes: len(nodes), Ops: strings.Join(ops, " ")}
	var reasons []string
	var odd []string
	for j := from + 1; j < to; j++ {
		ti := g.info[chain[j]]
		what := "of unknown type"
		if ti != nil {
			what = dtypeName(ti.dtype) + fmt.Sprint(ti.shape)
		}
		if g.varies[chain[j]] {
			what += ", shape depends on the input's values"
		}
		odd = append(odd, fmt.Sprintf("%q (%s)", chain[j], what))
	}
	if len(odd) > 0 {
		reasons = append(reasons, "the single tensors inside, "+strings.Join(odd, ", ")+", are not float32 activations of a static shape that can be sent")
	}
	if g.parallel(nodes, chain[from:to+1], read) {
		// The node where paths meet: the last node reading two or more
		// tensors computed inside the stretch.
		inside := map[string]bool{chain[from]: true}
		join := ""
		for _, i := range nodes {
			k := 0
			for _, t := range g.nodes[i].GetInput() {
				if inside[t] {
					k++
				}
			}
			if k >= 2 {
				join = nodeLabel(g.nodes[i])
			}
			for _, o := range g.nodes[i].GetOutput() {
				inside[o] = true
			}
		}
		r := fmt.Sprintf("parallel paths fork after %q", chain[from])
		if join != "" {
			r += " and rejoin at " + join
		}
		reasons = append(reasons, r+": every tensor inside is bypassed by another path (a skip connection, parallel branches or shape arithmetic)")
	}
	st.Reason = strings.Join(reasons, "; ")
	return st
}

// sendable reports whether tensor t can cross a split: a non-empty float32
// tensor whose shape does not depend on the input's values.
func (g *Graph) sendable(t string) bool {
	ti := g.info[t]
	return ti != nil && ti.dtype == dtFloat && len(ti.shape) > 0 && ti.elements() > 0 && !g.varies[t]
}
