package model

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
		for _, in := range n.GetInput() {
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
	for i, s := range seg {
		segFLOPs[s] += g.flops[i]
	}
	consumers := map[string][]int{}
	for i, n := range g.nodes {
		seen := map[string]bool{}
		for _, in := range n.GetInput() {
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
	var before int64
	for j := 1; j < len(chain)-1; j++ {
		before += segFLOPs[j]
		t := chain[j]
		ti := g.info[t]
		if ti.dtype != dtFloat {
			continue // only float32 activations can be packed and sent
		}
		c := CutPoint{Tensor: NewTensor(t, ti.shape...), FLOPsBefore: before, Op: g.nodes[g.producer[t]].GetOpType()}
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
