package bandit

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"

	"github.com/dynoml/dyno/costmodel"
)

// StateFormat is the version of the serialised state this build writes and
// reads. Bump it when the layout of any policy's payload changes.
const StateFormat = 2

// stateMagic starts every serialised policy.
const stateMagic = "DYNB"

// maxStateLen bounds what a decoder will allocate for one slice, so that
// corrupt bytes cannot ask for gigabytes.
const maxStateLen = 1 << 24

// encoder appends little-endian fields to a buffer.
type encoder struct{ b []byte }

func (e *encoder) u8(v uint8)   { e.b = append(e.b, v) }
func (e *encoder) u32(v uint32) { e.b = binary.LittleEndian.AppendUint32(e.b, v) }
func (e *encoder) u64(v uint64) { e.b = binary.LittleEndian.AppendUint64(e.b, v) }
func (e *encoder) i64(v int64)  { e.u64(uint64(v)) }
func (e *encoder) f64(v float64) {
	e.u64(math.Float64bits(v))
}
func (e *encoder) bool(v bool) {
	if v {
		e.u8(1)
	} else {
		e.u8(0)
	}
}
func (e *encoder) bytes(v []byte) { e.u32(uint32(len(v))); e.b = append(e.b, v...) }
func (e *encoder) str(v string)   { e.bytes([]byte(v)) }
func (e *encoder) f64s(v []float64) {
	e.u32(uint32(len(v)))
	for _, x := range v {
		e.f64(x)
	}
}
func (e *encoder) bools(v []bool) {
	e.u32(uint32(len(v)))
	for _, x := range v {
		e.bool(x)
	}
}

// decoder reads what encoder wrote. The first error sticks; every read after
// it returns zero values.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail(format string, args ...any) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: %s", ErrCorrupt, fmt.Sprintf(format, args...))
	}
}

func (d *decoder) take(n int, what string) []byte {
	if d.err != nil {
		return nil
	}
	if n < 0 || n > len(d.b) {
		d.fail("%s: need %d bytes, %d left", what, n, len(d.b))
		return nil
	}
	v := d.b[:n]
	d.b = d.b[n:]
	return v
}

func (d *decoder) u8(what string) uint8 {
	v := d.take(1, what)
	if v == nil {
		return 0
	}
	return v[0]
}

func (d *decoder) u32(what string) uint32 {
	v := d.take(4, what)
	if v == nil {
		return 0
	}
	return binary.LittleEndian.Uint32(v)
}

func (d *decoder) u64(what string) uint64 {
	v := d.take(8, what)
	if v == nil {
		return 0
	}
	return binary.LittleEndian.Uint64(v)
}

func (d *decoder) i64(what string) int64 { return int64(d.u64(what)) }

func (d *decoder) f64(what string) float64 { return math.Float64frombits(d.u64(what)) }

// finite reads a float64 that must be finite.
func (d *decoder) finite(what string) float64 {
	v := d.f64(what)
	if d.err == nil && (math.IsNaN(v) || math.IsInf(v, 0)) {
		d.fail("%s: %g is not finite", what, v)
	}
	return v
}

func (d *decoder) bool(what string) bool {
	switch d.u8(what) {
	case 0:
		return false
	case 1:
		return true
	}
	d.fail("%s: not a boolean", what)
	return false
}

func (d *decoder) length(what string, elem int) int {
	n := d.u32(what)
	if d.err != nil {
		return 0
	}
	if n > maxStateLen || int(n)*elem > len(d.b) {
		d.fail("%s: length %d exceeds the %d bytes left", what, n, len(d.b))
		return 0
	}
	return int(n)
}

func (d *decoder) bytes(what string) []byte {
	n := d.length(what, 1)
	return append([]byte(nil), d.take(n, what)...)
}

func (d *decoder) str(what string) string { return string(d.bytes(what)) }

// f64s reads a slice of finite float64s of exactly want entries (want < 0
// accepts any length).
func (d *decoder) f64s(what string, want int) []float64 {
	n := d.length(what, 8)
	if d.err == nil && want >= 0 && n != want {
		d.fail("%s: %d entries, want %d", what, n, want)
		return nil
	}
	v := make([]float64, n)
	for i := range v {
		v[i] = d.finite(what)
	}
	return v
}

func (d *decoder) bools(what string, want int) []bool {
	n := d.length(what, 1)
	if d.err == nil && want >= 0 && n != want {
		d.fail("%s: %d entries, want %d", what, n, want)
		return nil
	}
	v := make([]bool, n)
	for i := range v {
		v[i] = d.bool(what)
	}
	return v
}

// done fails if bytes are left over.
func (d *decoder) done() error {
	if d.err == nil && len(d.b) != 0 {
		d.fail("%d trailing bytes", len(d.b))
	}
	return d.err
}

// restorers builds a policy of each kind from its payload, after the common
// header has been read into c.
var restorers = map[string]func(c common, d *decoder) (Policy, error){}

// Restore reads a policy that MarshalBinary wrote, against the cost model it
// was built for. It is how the controller loads a stored policy and how an
// executor turns a published snapshot into a chooser.
func Restore(cm *costmodel.Model, data []byte) (Policy, error) {
	if cm == nil {
		return nil, fmt.Errorf("%w: restore: nil cost model", ErrInvalid)
	}
	d := &decoder{b: data}
	if string(d.take(len(stateMagic), "magic")) != stateMagic {
		if d.err == nil {
			d.fail("magic: not a dyno policy")
		}
		return nil, d.err
	}
	if v := d.u32("format"); d.err == nil && v != StateFormat {
		return nil, fmt.Errorf("%w: format %d, this build reads %d", ErrVersion, v, StateFormat)
	}
	kind := d.str("kind")
	if d.err != nil {
		return nil, d.err
	}
	restore, ok := restorers[kind]
	if !ok {
		return nil, fmt.Errorf("%w: serialised kind %q", ErrUnknownPolicy, kind)
	}
	c, err := decodeCommon(cm, d)
	if err != nil {
		return nil, err
	}
	p, err := restore(c, d)
	if err != nil {
		return nil, err
	}
	if err := d.done(); err != nil {
		return nil, err
	}
	return p, nil
}

// header writes the magic, format and kind, then the common state.
func (c *common) header(kind string) *encoder {
	e := &encoder{b: make([]byte, 0, 256)}
	e.b = append(e.b, stateMagic...)
	e.u32(StateFormat)
	e.str(kind)
	c.encode(e)
	return e
}

func (c *common) encode(e *encoder) {
	e.u64(c.version)
	arms := c.cm.Arms()
	e.u32(uint32(len(arms)))
	for _, a := range arms {
		e.i64(int64(a.Split))
		e.i64(int64(a.Bits))
	}
	obj, _ := json.Marshal(c.obj) // a validated Objective always marshals
	e.bytes(obj)
	e.bool(c.allowed != nil)
	if c.allowed != nil {
		e.bools(c.allowed)
	}
	e.i64(int64(c.pin))
	rng, _ := c.pcg.MarshalBinary() // PCG marshalling cannot fail
	e.bytes(rng)
}

func decodeCommon(cm *costmodel.Model, d *decoder) (common, error) {
	c := common{cm: cm, pin: -1}
	c.version = d.u64("version")
	arms := cm.Arms()
	n := d.length("arms", 16)
	if d.err == nil && n != len(arms) {
		return c, fmt.Errorf("%w: %d arms serialised, the model %s has %d", ErrModelMismatch, n, cm.Manifest.Name, len(arms))
	}
	for i := 0; i < n && d.err == nil; i++ {
		s, b := d.i64("arm.split"), d.i64("arm.bits")
		if d.err == nil && (int64(arms[i].Split) != s || int64(arms[i].Bits) != b) {
			return c, fmt.Errorf("%w: arm %d is s%d/b%d, the model has %v", ErrModelMismatch, i, s, b, arms[i])
		}
	}
	obj := d.bytes("objective")
	if d.err != nil {
		return c, d.err
	}
	if err := json.Unmarshal(obj, &c.obj); err != nil {
		return c, fmt.Errorf("%w: objective: %v", ErrCorrupt, err)
	}
	if err := c.obj.Validate(); err != nil {
		return c, fmt.Errorf("%w: objective: %w", ErrCorrupt, err)
	}
	if d.bool("mask present") {
		c.allowed = d.bools("mask", len(arms))
	}
	pin := d.i64("pin")
	if d.err == nil && (pin < -1 || pin >= int64(len(arms))) {
		d.fail("pin: %d is not an arm index", pin)
	}
	c.pin = int(pin)
	if d.err == nil && c.pin >= 0 && c.allowed != nil && !c.allowed[c.pin] {
		d.fail("pin: arm %d is masked", c.pin)
	}
	rng := d.bytes("rng")
	if d.err != nil {
		return c, d.err
	}
	c.pcg = newPCG(0)
	if err := c.pcg.UnmarshalBinary(rng); err != nil {
		return c, fmt.Errorf("%w: rng: %v", ErrCorrupt, err)
	}
	c.initRand()
	return c, nil
}
