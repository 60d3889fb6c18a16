package model

import (
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/dynoml/dyno/model/onnxpb"
)

// tinfo is what shape inference knows of a tensor: its element type, its
// static shape and, for small integer constants (shapes, axes), its values.
type tinfo struct {
	dtype int32
	shape []int64
	val   []int64 // nil unless a known integer constant
}

func (t *tinfo) elements() int64 { return prod(t.shape) }

// maxConstValues bounds the integer constants whose values are tracked.
const maxConstValues = 64

func constInfo(t *onnxpb.TensorProto) (*tinfo, error) {
	ti := &tinfo{dtype: t.GetDataType(), shape: slices.Clone(t.GetDims())}
	if ti.shape == nil {
		ti.shape = []int64{}
	}
	if (ti.dtype == dtInt64 || ti.dtype == dtInt32) && ti.elements() <= maxConstValues {
		v, err := intData(t)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrCorrupt, err)
		}
		ti.val = v
	}
	return ti, nil
}

// inferFunc infers the outputs of one node and counts its FLOPs.
type inferFunc func(c *nodeCtx) ([]*tinfo, int64, error)

// nodeCtx gives an operator's inference its inputs and attributes.
type nodeCtx struct {
	n     *onnxpb.NodeProto
	in    []*tinfo
	opset int64
}

func (c *nodeCtx) errorf(format string, args ...any) error {
	return fmt.Errorf("%w: %s: %s", ErrUnsupported, nodeLabel(c.n), fmt.Sprintf(format, args...))
}

// input returns input i, or an error if it is missing.
func (c *nodeCtx) input(i int) (*tinfo, error) {
	if i >= len(c.in) || c.in[i] == nil {
		return nil, fmt.Errorf("%w: %s: input %d is missing", ErrCorrupt, nodeLabel(c.n), i)
	}
	return c.in[i], nil
}

// optional returns input i or nil.
func (c *nodeCtx) optional(i int) *tinfo {
	if i >= len(c.in) {
		return nil
	}
	return c.in[i]
}

func (c *nodeCtx) attr(name string) *onnxpb.AttributeProto {
	for _, a := range c.n.GetAttribute() {
		if a.GetName() == name {
			return a
		}
	}
	return nil
}

func (c *nodeCtx) attrInt(name string, def int64) int64 {
	if a := c.attr(name); a != nil {
		return a.GetI()
	}
	return def
}

func (c *nodeCtx) attrInts(name string) []int64 {
	if a := c.attr(name); a != nil {
		return a.GetInts()
	}
	return nil
}

func (c *nodeCtx) attrString(name, def string) string {
	if a := c.attr(name); a != nil {
		return string(a.GetS())
	}
	return def
}

// axes reads an axes list from input i (newer opsets) or the attribute
// (older ones); nil, nil if neither is given.
func (c *nodeCtx) axes(i int) ([]int64, error) {
	if t := c.optional(i); t != nil {
		if t.val == nil {
			return nil, c.errorf("the axes (input %d) are computed at run time; dyno needs them constant", i)
		}
		return t.val, nil
	}
	return c.attrInts("axes"), nil
}

// inferer infers one operator; the node's first inputs inputs must be
// present (inferNode checks them, so the function can read c.in).
type inferer struct {
	fn     inferFunc
	inputs int
}

var inferers map[string]inferer

func init() {
	inferers = map[string]inferer{
		"Conv":               {inferConv, 2},
		"MaxPool":            {inferPool, 1},
		"AveragePool":        {inferPool, 1},
		"GlobalAveragePool":  {inferGlobalPool, 1},
		"GlobalMaxPool":      {inferGlobalPool, 1},
		"BatchNormalization": {inferBatchNorm, 5},
		"Add":                {inferBinary, 2},
		"Sub":                {inferBinary, 2},
		"Mul":                {inferBinary, 2},
		"Div":                {inferBinary, 2},
		"Pow":                {inferBinary, 2},
		"Flatten":            {inferFlatten, 1},
		"Gemm":               {inferGemm, 2},
		"MatMul":             {inferMatMul, 2},
		"Reshape":            {inferReshape, 1},
		"Concat":             {inferConcat, 1},
		"Transpose":          {inferTranspose, 1},
		"ReduceMean":         {inferReduceMean, 1},
		"Shape":              {inferShape, 1},
		"Gather":             {inferGather, 2},
		"Unsqueeze":          {inferUnsqueeze, 1},
		"Squeeze":            {inferSqueeze, 1},
		"Cast":               {inferCast, 1},
		"Constant":           {inferConstant, 0},
		"Dropout":            {inferDropout, 1},
	}
	for _, op := range elementwiseOps {
		inferers[op] = inferer{inferUnary, 1}
	}
}

// elementwiseOps keep their input's shape and, by the convention of the
// architecture tables and published FLOPs figures, cost no FLOPs.
var elementwiseOps = []string{"Relu", "Clip", "Sigmoid", "Tanh", "LeakyRelu", "HardSigmoid", "HardSwish", "Identity", "Softmax", "LogSoftmax", "Elu", "Selu", "Gelu", "Erf", "Neg", "Abs", "Sqrt", "Exp", "PRelu"}

// activationOps are the element-wise operators a default split cuts after
// rather than before.
var activationOps = map[string]bool{
	"Relu": true, "Clip": true, "Sigmoid": true, "Tanh": true, "LeakyRelu": true, "HardSigmoid": true,
	"HardSwish": true, "Identity": true, "Elu": true, "Selu": true, "Gelu": true, "PRelu": true,
	"BatchNormalization": true, "Dropout": true,
}

// SupportedOps lists the operators shape inference knows.
func SupportedOps() []string {
	var ops []string
	for op := range inferers {
		ops = append(ops, op)
	}
	sort.Strings(ops)
	return ops
}

func inferNode(n *onnxpb.NodeProto, in []*tinfo, opset int64) ([]*tinfo, int64, error) {
	inf, ok := inferers[n.GetOpType()]
	if !ok {
		return nil, 0, fmt.Errorf("%w: %s: operator %s has no shape inference in dyno (supported: %s); analyse with ONNX Runtime measuring the shapes (GraphOptions.Prober; dynoctl model split does) to accept any operator it runs", ErrUnsupported, nodeLabel(n), n.GetOpType(), strings.Join(SupportedOps(), ", "))
	}
	c := &nodeCtx{n: n, in: in, opset: opset}
	for i := range inf.inputs {
		if _, err := c.input(i); err != nil {
			return nil, 0, err
		}
	}
	outs, flops, err := inf.fn(c)
	if err != nil {
		return nil, 0, err
	}
	for i, o := range outs {
		for _, d := range o.shape {
			if d < 0 {
				return nil, 0, c.errorf("output %d has an invalid shape %v", i, o.shape)
			}
		}
	}
	return outs, flops, nil
}

func inferUnary(c *nodeCtx) ([]*tinfo, int64, error) {
	x := c.in[0]
	return []*tinfo{{dtype: x.dtype, shape: x.shape}}, 0, nil
}

func inferDropout(c *nodeCtx) ([]*tinfo, int64, error) {
	x := c.in[0]
	return []*tinfo{{dtype: x.dtype, shape: x.shape}, {dtype: int32(onnxpb.TensorProto_BOOL), shape: x.shape}}, 0, nil
}

func inferBatchNorm(c *nodeCtx) ([]*tinfo, int64, error) {
	x := c.in[0]
	if len(c.n.GetOutput()) > 1 || c.attrInt("training_mode", 0) != 0 {
		return nil, 0, c.errorf("training-mode batch normalisation (running statistics as outputs); export the model in eval mode")
	}
	if len(x.shape) < 2 {
		return nil, 0, c.errorf("input rank %d is below 2", len(x.shape))
	}
	for i := 1; i <= 4; i++ {
		p := c.in[i]
		if p.elements() != x.shape[1] {
			return nil, 0, c.errorf("input %d has %d elements, the input has %d channels", i, p.elements(), x.shape[1])
		}
	}
	return []*tinfo{{dtype: x.dtype, shape: x.shape}}, 2 * x.elements(), nil
}

// spatial computes the output extent of a convolution or pooling window.
func (c *nodeCtx) spatial(x []int64, kernel []int64, ceil bool) ([]int64, error) {
	k := len(kernel)
	strides := c.attrInts("strides")
	if strides == nil {
		strides = ones(k)
	}
	dil := c.attrInts("dilations")
	if dil == nil {
		dil = ones(k)
	}
	pads := c.attrInts("pads")
	if pads == nil {
		pads = make([]int64, 2*k)
	}
	if len(strides) != k || len(dil) != k || len(pads) != 2*k {
		return nil, c.errorf("strides %v, dilations %v or pads %v do not match the %d-D kernel %v", strides, dil, pads, k, kernel)
	}
	autoPad := c.attrString("auto_pad", "NOTSET")
	out := make([]int64, k)
	for i := 0; i < k; i++ {
		if strides[i] <= 0 || dil[i] <= 0 || kernel[i] <= 0 {
			return nil, c.errorf("kernel %v, strides %v and dilations %v must be positive", kernel, strides, dil)
		}
		span := (kernel[i]-1)*dil[i] + 1
		switch autoPad {
		case "SAME_UPPER", "SAME_LOWER":
			out[i] = (x[i] + strides[i] - 1) / strides[i]
			continue
		case "VALID":
			out[i] = (x[i]-span)/strides[i] + 1
			if x[i] < span {
				return nil, c.errorf("input extent %d is smaller than the window %d", x[i], span)
			}
			continue
		case "NOTSET", "":
		default:
			return nil, c.errorf("unknown auto_pad %q", autoPad)
		}
		total := x[i] + pads[i] + pads[i+k] - span
		if total < 0 {
			return nil, c.errorf("padded input extent %d is smaller than the window %d", x[i]+pads[i]+pads[i+k], span)
		}
		if ceil {
			out[i] = (total+strides[i]-1)/strides[i] + 1
			// The last window must start inside the input or its
			// left padding (ONNX and PyTorch agree on this).
			if (out[i]-1)*strides[i] >= x[i]+pads[i] {
				out[i]--
			}
		} else {
			out[i] = total/strides[i] + 1
		}
	}
	return out, nil
}

func ones(k int) []int64 {
	o := make([]int64, k)
	for i := range o {
		o[i] = 1
	}
	return o
}

func prod(d []int64) int64 {
	n := int64(1)
	for _, v := range d {
		n *= v
	}
	return n
}

func inferConv(c *nodeCtx) ([]*tinfo, int64, error) {
	x := c.in[0]
	w := c.in[1]
	if len(x.shape) < 3 || len(w.shape) != len(x.shape) {
		return nil, 0, c.errorf("input shape %v and weight shape %v do not make a convolution", x.shape, w.shape)
	}
	group := c.attrInt("group", 1)
	if group <= 0 || x.shape[1] != w.shape[1]*group || w.shape[0]%group != 0 {
		return nil, 0, c.errorf("input channels %d, weight %v and group %d do not match", x.shape[1], w.shape, group)
	}
	kernel := c.attrInts("kernel_shape")
	if kernel == nil {
		kernel = w.shape[2:]
	}
	if !slices.Equal(kernel, w.shape[2:]) {
		return nil, 0, c.errorf("kernel_shape %v differs from the weight's %v", kernel, w.shape[2:])
	}
	sp, err := c.spatial(x.shape[2:], kernel, false)
	if err != nil {
		return nil, 0, err
	}
	out := append([]int64{x.shape[0], w.shape[0]}, sp...)
	outElems := prod(out)
	flops := 2 * outElems * w.shape[1] * prod(kernel)
	if b := c.optional(2); b != nil {
		if b.elements() != w.shape[0] {
			return nil, 0, c.errorf("bias has %d elements for %d output channels", b.elements(), w.shape[0])
		}
		flops += outElems
	}
	return []*tinfo{{dtype: x.dtype, shape: out}}, flops, nil
}

func inferPool(c *nodeCtx) ([]*tinfo, int64, error) {
	x := c.in[0]
	kernel := c.attrInts("kernel_shape")
	if len(kernel) == 0 || len(x.shape) != len(kernel)+2 {
		return nil, 0, c.errorf("kernel_shape %v does not fit input shape %v", kernel, x.shape)
	}
	sp, err := c.spatial(x.shape[2:], kernel, c.attrInt("ceil_mode", 0) != 0)
	if err != nil {
		return nil, 0, err
	}
	out := append([]int64{x.shape[0], x.shape[1]}, sp...)
	k := prod(kernel)
	flops := prod(out) * k // AveragePool: k-1 adds and a division
	if c.n.GetOpType() == "MaxPool" {
		flops = prod(out) * (k - 1)
	}
	return []*tinfo{{dtype: x.dtype, shape: out}, {dtype: dtInt64, shape: out}}, flops, nil
}

func inferGlobalPool(c *nodeCtx) ([]*tinfo, int64, error) {
	x := c.in[0]
	if len(x.shape) < 3 {
		return nil, 0, c.errorf("input rank %d is below 3", len(x.shape))
	}
	out := slices.Clone(x.shape)
	for i := 2; i < len(out); i++ {
		out[i] = 1
	}
	return []*tinfo{{dtype: x.dtype, shape: out}}, x.elements(), nil
}

// broadcast applies numpy broadcasting to two shapes.
func broadcast(a, b []int64) ([]int64, bool) {
	n := max(len(a), len(b))
	out := make([]int64, n)
	for i := 0; i < n; i++ {
		da, db := int64(1), int64(1)
		if j := len(a) - n + i; j >= 0 {
			da = a[j]
		}
		if j := len(b) - n + i; j >= 0 {
			db = b[j]
		}
		switch {
		case da == db, db == 1:
			out[i] = da
		case da == 1:
			out[i] = db
		default:
			return nil, false
		}
	}
	return out, true
}

func inferBinary(c *nodeCtx) ([]*tinfo, int64, error) {
	a := c.in[0]
	b := c.in[1]
	out, ok := broadcast(a.shape, b.shape)
	if !ok {
		return nil, 0, c.errorf("shapes %v and %v do not broadcast", a.shape, b.shape)
	}
	res := &tinfo{dtype: a.dtype, shape: out}
	if a.val != nil && b.val != nil && len(out) <= 1 && (len(a.val) == len(b.val) || len(a.val) == 1 || len(b.val) == 1) {
		res.val = make([]int64, prod(out))
		for i := range res.val {
			x, y := a.val[min(i, len(a.val)-1)], b.val[min(i, len(b.val)-1)]
			switch c.n.GetOpType() {
			case "Add":
				res.val[i] = x + y
			case "Sub":
				res.val[i] = x - y
			case "Mul":
				res.val[i] = x * y
			case "Div":
				if y == 0 {
					return nil, 0, c.errorf("integer division by zero in a constant")
				}
				res.val[i] = x / y
			}
		}
	}
	return []*tinfo{res}, prod(out), nil
}

func normAxis(c *nodeCtx, axis int64, rank int, inclusive bool) (int, error) {
	lim := int64(rank)
	if inclusive {
		lim++
	}
	if axis < 0 {
		axis += lim
	}
	if axis < 0 || axis >= lim {
		return 0, c.errorf("axis out of range for rank %d", rank)
	}
	return int(axis), nil
}

func inferFlatten(c *nodeCtx) ([]*tinfo, int64, error) {
	x := c.in[0]
	axis, err := normAxis(c, c.attrInt("axis", 1), len(x.shape), true)
	if err != nil {
		return nil, 0, err
	}
	return []*tinfo{{dtype: x.dtype, shape: []int64{prod(x.shape[:axis]), prod(x.shape[axis:])}}}, 0, nil
}

func inferGemm(c *nodeCtx) ([]*tinfo, int64, error) {
	a := c.in[0]
	b := c.in[1]
	if len(a.shape) != 2 || len(b.shape) != 2 {
		return nil, 0, c.errorf("Gemm needs 2-D inputs, got %v and %v", a.shape, b.shape)
	}
	m, k := a.shape[0], a.shape[1]
	if c.attrInt("transA", 0) != 0 {
		m, k = k, m
	}
	kb, n := b.shape[0], b.shape[1]
	if c.attrInt("transB", 0) != 0 {
		kb, n = n, kb
	}
	if k != kb {
		return nil, 0, c.errorf("inner dimensions differ: A %v, B %v", a.shape, b.shape)
	}
	flops := 2 * m * n * k
	if bias := c.optional(2); bias != nil {
		if _, ok := broadcast([]int64{m, n}, bias.shape); !ok {
			return nil, 0, c.errorf("bias %v does not broadcast to %v", bias.shape, []int64{m, n})
		}
		flops += m * n
	}
	return []*tinfo{{dtype: a.dtype, shape: []int64{m, n}}}, flops, nil
}

func inferMatMul(c *nodeCtx) ([]*tinfo, int64, error) {
	a := c.in[0]
	b := c.in[1]
	if len(a.shape) == 0 || len(b.shape) == 0 {
		return nil, 0, c.errorf("MatMul of a scalar")
	}
	as, bs := a.shape, b.shape
	if len(as) == 1 {
		as = []int64{1, as[0]}
	}
	if len(bs) == 1 {
		bs = []int64{bs[0], 1}
	}
	m, k := as[len(as)-2], as[len(as)-1]
	kb, n := bs[len(bs)-2], bs[len(bs)-1]
	if k != kb {
		return nil, 0, c.errorf("inner dimensions differ: %v x %v", a.shape, b.shape)
	}
	batch, ok := broadcast(as[:len(as)-2], bs[:len(bs)-2])
	if !ok {
		return nil, 0, c.errorf("batch dimensions of %v and %v do not broadcast", a.shape, b.shape)
	}
	out := slices.Clone(batch)
	if len(a.shape) > 1 {
		out = append(out, m)
	}
	if len(b.shape) > 1 {
		out = append(out, n)
	}
	return []*tinfo{{dtype: a.dtype, shape: out}}, 2 * prod(batch) * m * n * k, nil
}

func inferReshape(c *nodeCtx) ([]*tinfo, int64, error) {
	x := c.in[0]
	var target []int64
	if c.opset < 5 {
		target = c.attrInts("shape")
	} else {
		s, err := c.input(1)
		if err != nil {
			return nil, 0, err
		}
		if s.val == nil {
			return nil, 0, c.errorf("the target shape is computed at run time; dyno needs a constant shape (an initializer, a Constant, or Shape/Gather/Concat of static shapes)")
		}
		target = s.val
	}
	allowZero := c.attrInt("allowzero", 0) != 0
	out := make([]int64, len(target))
	infer := -1
	known := int64(1)
	for i, d := range target {
		switch {
		case d == -1:
			if infer >= 0 {
				return nil, 0, c.errorf("target shape %v has two -1 dimensions", target)
			}
			infer = i
			continue
		case d == 0 && !allowZero:
			if i >= len(x.shape) {
				return nil, 0, c.errorf("target shape %v copies dimension %d of a rank-%d input", target, i, len(x.shape))
			}
			d = x.shape[i]
		case d < 0:
			return nil, 0, c.errorf("target shape %v has a negative dimension", target)
		}
		out[i] = d
		known *= d
	}
	total := x.elements()
	if infer >= 0 {
		if known == 0 || total%known != 0 {
			return nil, 0, c.errorf("cannot reshape %v into %v", x.shape, target)
		}
		out[infer] = total / known
	} else if known != total {
		return nil, 0, c.errorf("cannot reshape %v (%d elements) into %v", x.shape, total, target)
	}
	return []*tinfo{{dtype: x.dtype, shape: out, val: x.val}}, 0, nil
}

func inferConcat(c *nodeCtx) ([]*tinfo, int64, error) {
	first := c.in[0]
	axis, err := normAxis(c, c.attrInt("axis", 0), len(first.shape), false)
	if err != nil {
		return nil, 0, err
	}
	out := slices.Clone(first.shape)
	out[axis] = 0
	var vals []int64
	allVals := len(first.shape) == 1
	for i := range c.in {
		t, err := c.input(i)
		if err != nil {
			return nil, 0, err
		}
		if len(t.shape) != len(out) {
			return nil, 0, c.errorf("input %d has rank %d, input 0 rank %d", i, len(t.shape), len(out))
		}
		for d := range out {
			if d != axis && t.shape[d] != out[d] {
				return nil, 0, c.errorf("input %d shape %v differs from %v outside axis %d", i, t.shape, first.shape, axis)
			}
		}
		out[axis] += t.shape[axis]
		if t.val == nil {
			allVals = false
		}
		vals = append(vals, t.val...)
	}
	res := &tinfo{dtype: first.dtype, shape: out}
	if allVals {
		res.val = vals
	}
	return []*tinfo{res}, 0, nil
}

func inferTranspose(c *nodeCtx) ([]*tinfo, int64, error) {
	x := c.in[0]
	perm := c.attrInts("perm")
	if perm == nil {
		for i := len(x.shape) - 1; i >= 0; i-- {
			perm = append(perm, int64(i))
		}
	}
	if len(perm) != len(x.shape) {
		return nil, 0, c.errorf("perm %v does not fit rank %d", perm, len(x.shape))
	}
	out := make([]int64, len(perm))
	seen := make([]bool, len(perm))
	for i, p := range perm {
		if p < 0 || int(p) >= len(perm) || seen[p] {
			return nil, 0, c.errorf("perm %v is not a permutation", perm)
		}
		seen[p] = true
		out[i] = x.shape[p]
	}
	return []*tinfo{{dtype: x.dtype, shape: out}}, 0, nil
}

func inferReduceMean(c *nodeCtx) ([]*tinfo, int64, error) {
	x := c.in[0]
	axes, err := c.axes(1)
	if err != nil {
		return nil, 0, err
	}
	keep := c.attrInt("keepdims", 1) != 0
	reduce := make([]bool, len(x.shape))
	if len(axes) == 0 {
		if c.attrInt("noop_with_empty_axes", 0) != 0 {
			return []*tinfo{{dtype: x.dtype, shape: x.shape}}, 0, nil
		}
		for i := range reduce {
			reduce[i] = true
		}
	}
	for _, a := range axes {
		ax, err := normAxis(c, a, len(x.shape), false)
		if err != nil {
			return nil, 0, err
		}
		reduce[ax] = true
	}
	var out []int64
	for i, d := range x.shape {
		switch {
		case !reduce[i]:
			out = append(out, d)
		case keep:
			out = append(out, 1)
		}
	}
	if out == nil {
		out = []int64{}
	}
	return []*tinfo{{dtype: x.dtype, shape: out}}, x.elements(), nil
}

func inferShape(c *nodeCtx) ([]*tinfo, int64, error) {
	x := c.in[0]
	r := int64(len(x.shape))
	start, end := c.attrInt("start", 0), c.attrInt("end", r)
	clamp := func(v int64) int64 {
		if v < 0 {
			v += r
		}
		return min(max(v, 0), r)
	}
	start, end = clamp(start), clamp(end)
	vals := []int64{}
	if start < end {
		vals = slices.Clone(x.shape[start:end])
	}
	return []*tinfo{{dtype: dtInt64, shape: []int64{int64(len(vals))}, val: vals}}, 0, nil
}

func inferGather(c *nodeCtx) ([]*tinfo, int64, error) {
	x := c.in[0]
	idx := c.in[1]
	axis, err := normAxis(c, c.attrInt("axis", 0), len(x.shape), false)
	if err != nil {
		return nil, 0, err
	}
	out := append(append(slices.Clone(x.shape[:axis]), idx.shape...), x.shape[axis+1:]...)
	res := &tinfo{dtype: x.dtype, shape: out}
	if x.val != nil && idx.val != nil && len(x.shape) == 1 {
		for _, i := range idx.val {
			if i < 0 {
				i += int64(len(x.val))
			}
			if i < 0 || i >= int64(len(x.val)) {
				return nil, 0, c.errorf("index %d out of range for %d values", i, len(x.val))
			}
			res.val = append(res.val, x.val[i])
		}
	}
	return []*tinfo{res}, 0, nil
}

func inferUnsqueeze(c *nodeCtx) ([]*tinfo, int64, error) {
	x := c.in[0]
	axes, err := c.axes(1)
	if err != nil {
		return nil, 0, err
	}
	r := len(x.shape) + len(axes)
	ins := make([]bool, r)
	for _, a := range axes {
		ax, err := normAxis(c, a, r, false)
		if err != nil {
			return nil, 0, err
		}
		ins[ax] = true
	}
	out := make([]int64, 0, r)
	j := 0
	for i := 0; i < r; i++ {
		if ins[i] {
			out = append(out, 1)
		} else {
			if j >= len(x.shape) {
				return nil, 0, c.errorf("duplicate axes %v", axes)
			}
			out = append(out, x.shape[j])
			j++
		}
	}
	return []*tinfo{{dtype: x.dtype, shape: out, val: x.val}}, 0, nil
}

func inferSqueeze(c *nodeCtx) ([]*tinfo, int64, error) {
	x := c.in[0]
	axes, err := c.axes(1)
	if err != nil {
		return nil, 0, err
	}
	drop := make([]bool, len(x.shape))
	for _, a := range axes {
		ax, err := normAxis(c, a, len(x.shape), false)
		if err != nil {
			return nil, 0, err
		}
		if x.shape[ax] != 1 {
			return nil, 0, c.errorf("cannot squeeze axis %d of size %d", ax, x.shape[ax])
		}
		drop[ax] = true
	}
	out := []int64{}
	for i, d := range x.shape {
		if drop[i] || (len(axes) == 0 && d == 1) {
			continue
		}
		out = append(out, d)
	}
	return []*tinfo{{dtype: x.dtype, shape: out, val: x.val}}, 0, nil
}

func inferCast(c *nodeCtx) ([]*tinfo, int64, error) {
	x := c.in[0]
	to := int32(c.attrInt("to", 0))
	res := &tinfo{dtype: to, shape: x.shape}
	if to == dtInt64 || to == dtInt32 {
		res.val = x.val
	}
	return []*tinfo{res}, 0, nil
}

func inferConstant(c *nodeCtx) ([]*tinfo, int64, error) {
	if a := c.attr("value"); a != nil && a.T != nil {
		if err := checkTensorSize(a.T, nodeLabel(c.n)+" value"); err != nil {
			return nil, 0, err
		}
		ti, err := constInfo(a.T)
		return []*tinfo{ti}, 0, err
	}
	if a := c.attr("value_int"); a != nil {
		return []*tinfo{{dtype: dtInt64, shape: []int64{}, val: []int64{a.GetI()}}}, 0, nil
	}
	if a := c.attr("value_ints"); a != nil {
		return []*tinfo{{dtype: dtInt64, shape: []int64{int64(len(a.GetInts()))}, val: slices.Clone(a.GetInts())}}, 0, nil
	}
	if a := c.attr("value_float"); a != nil {
		return []*tinfo{{dtype: dtFloat, shape: []int64{}}}, 0, nil
	}
	if a := c.attr("value_floats"); a != nil {
		return []*tinfo{{dtype: dtFloat, shape: []int64{int64(len(a.GetFloats()))}}}, 0, nil
	}
	return nil, 0, c.errorf("Constant without a value, value_int(s) or value_float(s) attribute")
}
