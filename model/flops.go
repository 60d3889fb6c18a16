package model

import "github.com/dynoml/dyno/model/onnxpb"

// flopCount counts the FLOPs of a node from the shapes of its inputs and
// outputs (nil where unknown) for operators whose shapes dyno leaves to
// the measurement; false when the shapes it needs are unknown.
type flopCount func(n *onnxpb.NodeProto, in, out []*tinfo) (int64, bool)

// flopCounts are the operators dyno counts without inferring their shapes.
var flopCounts = map[string]flopCount{
	"ConvTranspose":      convTransposeFLOPs,
	"LayerNormalization": layerNormFLOPs,
}

// movementOps only move or generate data: 0 FLOPs, as reshapes and
// concatenations.
var movementOps = []string{"Slice", "Expand", "Tile", "Pad", "Split", "ConstantOfShape", "Range", "DepthToSpace", "SpaceToDepth", "Squeeze", "Unsqueeze", "Reshape", "Flatten", "Transpose", "Concat", "Gather", "Shape", "Cast", "Identity"}

// reduceOps cost 1 FLOP per input element, as ReduceMean does.
var reduceOps = []string{"ReduceSum", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1", "ReduceL2", "ReduceSumSquare", "ReduceLogSumExp", "ArgMax", "ArgMin"}

// pointwiseOps cost 1 FLOP per output element, as Add does.
var pointwiseOps = []string{"Equal", "Greater", "GreaterOrEqual", "Less", "LessOrEqual", "Where", "Max", "Min", "Mod", "And", "Or", "Not", "Xor", "Reciprocal", "Floor", "Ceil", "Round", "Sign"}

func init() {
	for _, op := range movementOps {
		flopCounts[op] = func(*onnxpb.NodeProto, []*tinfo, []*tinfo) (int64, bool) { return 0, true }
	}
	for _, op := range reduceOps {
		flopCounts[op] = func(_ *onnxpb.NodeProto, in, _ []*tinfo) (int64, bool) {
			if x := known(in, 0); x != nil {
				return x.elements(), true
			}
			return 0, false
		}
	}
	for _, op := range pointwiseOps {
		flopCounts[op] = func(_ *onnxpb.NodeProto, _, out []*tinfo) (int64, bool) {
			if y := known(out, 0); y != nil {
				return y.elements(), true
			}
			return 0, false
		}
	}
}

func known(ts []*tinfo, i int) *tinfo {
	if i < len(ts) {
		return ts[i]
	}
	return nil
}

// convTransposeFLOPs: every input element is multiplied into a kernel of
// (output channels / groups) x kernel extent, 2 FLOPs per multiply-add,
// plus 1 per output for the bias.
func convTransposeFLOPs(n *onnxpb.NodeProto, in, out []*tinfo) (int64, bool) {
	x, w, y := known(in, 0), known(in, 1), known(out, 0)
	if x == nil || w == nil || len(w.shape) < 3 || w.shape[0] == 0 {
		return 0, false
	}
	per := w.elements() / w.shape[0] // (C_out/groups) x kernel
	f := 2 * x.elements() * per
	if b := known(in, 2); b != nil {
		if y == nil {
			return 0, false
		}
		f += y.elements()
	}
	return f, true
}

// layerNormFLOPs counts 7 per element, what the same normalisation costs
// when exported as ReduceMean, Sub, Pow, ReduceMean, Div, Mul and Add.
func layerNormFLOPs(n *onnxpb.NodeProto, in, out []*tinfo) (int64, bool) {
	x := known(in, 0)
	if x == nil {
		return 0, false
	}
	return 7 * x.elements(), true
}
