package model

import "github.com/dynoml/dyno/model/onnxpb"

// Control-flow operators (If, Loop, Scan) hold subgraphs that may read
// tensors of the enclosing graph by name, without listing them as inputs.
// For the dataflow those are inputs all the same: reads returns them with
// the node's own inputs, so dominators, liveness and block extraction see
// every tensor a node depends on.

// reads lists the tensors node n reads: its inputs, then the tensors of
// the enclosing graph its subgraphs refer to.
func (g *Graph) reads(n *onnxpb.NodeProto) []string {
	outer, ok := g.outer[n]
	if !ok {
		outer = outerRefs(n)
		g.outer[n] = outer
	}
	if len(outer) == 0 {
		return n.GetInput()
	}
	return append(append([]string(nil), n.GetInput()...), outer...)
}

// outerRefs lists the names node n's subgraphs read from outside them.
func outerRefs(n *onnxpb.NodeProto) []string {
	var out []string
	seen := map[string]bool{}
	for _, a := range n.GetAttribute() {
		subs := a.GetGraphs()
		if a.G != nil {
			subs = append(subs, a.G)
		}
		for _, sg := range subs {
			for _, t := range graphFree(sg) {
				if !seen[t] {
					seen[t] = true
					out = append(out, t)
				}
			}
		}
	}
	return out
}

// graphFree lists the names a graph reads that it does not define.
func graphFree(gp *onnxpb.GraphProto) []string {
	defined := map[string]bool{"": true}
	for _, vi := range gp.GetInput() {
		defined[vi.GetName()] = true
	}
	for _, t := range gp.GetInitializer() {
		defined[t.GetName()] = true
	}
	var out []string
	seen := map[string]bool{}
	use := func(t string) {
		if !defined[t] && !seen[t] {
			seen[t] = true
			out = append(out, t)
		}
	}
	for _, n := range gp.GetNode() {
		for _, t := range n.GetInput() {
			use(t)
		}
		for _, t := range outerRefs(n) {
			use(t)
		}
		for _, o := range n.GetOutput() {
			defined[o] = true
		}
	}
	for _, o := range gp.GetOutput() {
		use(o.GetName())
	}
	return out
}
