package tracelog

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
	"unsafe"
)

// decode parses one line into r, reusing r's slices.
//
// The decoder is written for this schema because decoding is most of the
// cost of evaluating a log offline: a generic decoder (reflection or
// generated, encoding/json, goccy/go-json, sonic) spent 4 to 47 µs on a
// record with a 127-arm distribution, nearly all of it converting the
// distribution's numbers. This one walks the line once, converts numbers
// exactly without strconv in nearly every case (number.go), and leaves the
// rare hard cases (escaped or invalid UTF-8 strings, numbers it cannot
// place) to the standard library, so it accepts and produces what encoding/json
// would: unknown fields are skipped, keys match case-insensitively,
// null leaves a field at its zero value, and a later duplicate wins.
// TestDecodeMatchesEncodingJSON and FuzzDecode check it against
// encoding/json.
func decode(line []byte, r *Record, prev *repeats) error {
	if prev == nil {
		prev = &repeats{}
	}
	d := lexer{b: line, prev: prev}
	if err := d.object(recordFields, func(k int, key []byte) error { return r.decodeField(&d, k, key) }); err != nil {
		return err
	}
	if d.space(); d.i != len(d.b) {
		return d.errorf("unexpected %s after the record", d.what())
	}
	return nil
}

// The fields of each object, in the order the writer puts them: a decoder
// that finds the next key where it expects it compares bytes instead of
// scanning a string.
var (
	recordFields = newFields("schema", "id", "key", "executor", "seq", "time", "policy", "policy_version", "conditions",
		"eligible", "eligible_mask", "allowed_bits", "arm_index", "arm", "explore", "propensity", "probs", "observed", "accuracy", "cost",
		"start_unix_nano", "received_unix_nano")
	conditionFields = newFields("bandwidth_mbps", "rtt_ms", "cloud_queue_ms", "cloud_slowdown", "device_slowdown")
	armFields       = newFields("split", "bits")
	observedFields  = newFields("device_ms", "pack_ms", "bytes", "network_ms", "rtt_ms", "cloud_queue_ms", "cloud_ms", "unpack_ms", "latency_ms")
)

// The indices of recordFields.
const (
	fSchema = iota
	fID
	fKey
	fExecutor
	fSeq
	fTime
	fPolicy
	fPolicyVersion
	fConditions
	fEligible
	fEligibleMask
	fAllowedBits
	fArmIndex
	fArm
	fExplore
	fPropensity
	fProbs
	fObserved
	fAccuracy
	fCost
	fStartUnixNano
	fReceivedUnixNano
)

// decodeField decodes the value of top-level field k (key when unknown).
func (r *Record) decodeField(d *lexer, k int, key []byte) error {
	var err error
	switch k {
	case fSchema:
		err = d.integer(func(s string) (err error) { r.Schema, err = parseInt(s); return })
	case fID:
		err = d.str(&r.ID)
	case fKey:
		err = d.strRepeat(&r.Key, &d.prev.key)
	case fExecutor:
		err = d.strRepeat(&r.Executor, &d.prev.executor)
	case fSeq:
		err = d.integer(func(s string) (err error) { r.Seq, err = parseUint(s); return })
	case fTime:
		err = d.time(r)
	case fPolicy:
		err = d.strRepeat(&r.Policy, &d.prev.policy)
	case fPolicyVersion:
		err = d.integer(func(s string) (err error) { r.PolicyVersion, err = parseUint(s); return })
	case fConditions:
		c := &r.Conditions
		err = d.objectOrNull(conditionFields, func(k int, _ []byte) error {
			return d.floatField(k, &c.BandwidthMbps, &c.RTTMs, &c.CloudQueueMs, &c.CloudSlowdown, &c.DeviceSlowdown)
		})
	case fEligible:
		err = d.ints(&r.Eligible)
	case fEligibleMask:
		err = d.strRepeat(&r.EligibleMask, &d.prev.eligibleMask)
	case fAllowedBits:
		err = d.ints(&r.AllowedBits)
	case fArmIndex:
		err = d.integer(func(s string) (err error) { r.ArmIndex, err = parseInt(s); return })
	case fArm:
		a := &r.Arm
		err = d.objectOrNull(armFields, func(k int, _ []byte) error {
			switch k {
			case 0:
				return d.integer(func(s string) (err error) { a.Split, err = parseInt(s); return })
			case 1:
				return d.integer(func(s string) (err error) { a.Bits, err = parseInt(s); return })
			}
			return d.skip(0)
		})
	case fExplore:
		err = d.boolean(&r.Explore)
	case fPropensity:
		err = d.float(&r.Propensity)
	case fProbs:
		err = d.probs(&r.Probs)
	case fObserved:
		o := &r.Observed
		err = d.objectOrNull(observedFields, func(k int, _ []byte) error {
			return d.floatField(k, &o.DeviceMs, &o.PackMs, &o.Bytes, &o.NetworkMs, &o.RTTMs, &o.CloudQueueMs, &o.CloudMs, &o.UnpackMs, &o.LatencyMs)
		})
	case fAccuracy:
		err = d.accuracy(r)
	case fCost:
		err = d.float(&r.Cost)
	case fStartUnixNano:
		err = d.integer(func(s string) (err error) { r.StartUnixNano, err = strconv.ParseInt(s, 10, 64); return })
	case fReceivedUnixNano:
		err = d.integer(func(s string) (err error) { r.ReceivedUnixNano, err = strconv.ParseInt(s, 10, 64); return })
	default:
		return d.skip(0)
	}
	if err != nil {
		return fmt.Errorf("%s: %w", recordFields.names[k], err)
	}
	return nil
}

// floatField decodes field k of an object of numbers into dst[k], or skips
// an unknown field.
func (d *lexer) floatField(k int, dst ...*float64) error {
	if k < 0 || k >= len(dst) {
		return d.skip(0)
	}
	return d.float(dst[k])
}

// fields are the field names of one object, for matching keys.
type fields struct {
	names  []string
	quoted []string // each name with its quotes and colon: "name":
}

func newFields(names ...string) *fields {
	f := &fields{names: names}
	for _, n := range names {
		f.quoted = append(f.quoted, `"`+n+`":`)
	}
	return f
}

// index returns the field key names, exactly or else up to case, or -1.
func (f *fields) index(key []byte) int {
	for k, n := range f.names {
		if string(key) == n {
			return k
		}
	}
	for k, n := range f.names {
		if strings.EqualFold(string(key), n) {
			return k
		}
	}
	return -1
}

// noFields is the field list of an object whose fields are all skipped.
var noFields = newFields()

// maxDepth bounds the nesting of skipped values, as encoding/json does.
const maxDepth = 10000

// lexer walks one JSON document.
type lexer struct {
	b    []byte
	i    int
	prev *repeats
}

// repeats are the strings of the previous record that the next one likely
// repeats (a log holds few keys, executors and policies): a repeat is
// compared, not allocated again.
type repeats struct{ key, executor, policy, eligibleMask string }

func (d *lexer) errorf(format string, args ...any) error {
	return fmt.Errorf("at byte %d: %s", d.i+1, fmt.Sprintf(format, args...))
}

// what names the byte at the cursor for an error.
func (d *lexer) what() string {
	if d.i >= len(d.b) {
		return "end of line"
	}
	return strconv.QuoteRune(rune(d.b[d.i]))
}

func (d *lexer) space() { d.i = skipSpace(d.b, d.i) }

// peek returns the next non-space byte, or 0 at the end.
func (d *lexer) peek() byte {
	d.space()
	if d.i >= len(d.b) {
		return 0
	}
	return d.b[d.i]
}

// null consumes a null literal if one is next.
func (d *lexer) null() (bool, error) {
	if d.i < len(d.b) && d.b[d.i] > ' ' && d.b[d.i] != 'n' {
		return false, nil // the common case, without a call to skip spaces
	}
	if d.peek() != 'n' {
		return false, nil
	}
	return true, d.literal("null")
}

func (d *lexer) literal(lit string) error {
	if len(d.b)-d.i < len(lit) || string(d.b[d.i:d.i+len(lit)]) != lit {
		return d.errorf("unexpected %s", d.what())
	}
	d.i += len(lit)
	return nil
}

// object walks an object of the given fields, calling field with each key's
// index in them (-1 and the key for an unknown one) and the lexer at its
// value, which field must consume.
func (d *lexer) object(f *fields, field func(k int, key []byte) error) error {
	if d.peek() != '{' {
		return d.errorf("want an object, got %s", d.what())
	}
	d.i++
	if d.peek() == '}' {
		d.i++
		return nil
	}
	next := 0 // the field expected next
	for {
		if d.i >= len(d.b) || d.b[d.i] != '"' {
			if d.peek() != '"' {
				return d.errorf("want a field name, got %s", d.what())
			}
		}
		k, key := -1, []byte(nil)
		if next < len(f.quoted) && hasPrefix(d.b[d.i:], f.quoted[next]) {
			k = next
			d.i += len(f.quoted[next])
		} else {
			var err error
			if key, err = d.key(); err != nil {
				return err
			}
			if d.peek() != ':' {
				return d.errorf("want ':' after a field name, got %s", d.what())
			}
			d.i++
			k = f.index(key)
		}
		if k >= 0 {
			next = k + 1
		}
		d.space()
		if err := field(k, key); err != nil {
			return err
		}
		if d.i < len(d.b) && d.b[d.i] == ',' {
			d.i++
			continue
		}
		switch d.peek() {
		case ',':
			d.i++
		case '}':
			d.i++
			return nil
		default:
			return d.errorf("want ',' or '}' after a field, got %s", d.what())
		}
	}
}

func hasPrefix(b []byte, s string) bool { return len(b) >= len(s) && string(b[:len(s)]) == s }

// objectOrNull is object where null leaves the fields as they are.
func (d *lexer) objectOrNull(f *fields, field func(k int, key []byte) error) error {
	if null, err := d.null(); null || err != nil {
		return err
	}
	return d.object(f, field)
}

// key returns a field name. A name with escapes is unescaped into a new
// slice; any other is a view of the line.
func (d *lexer) key() ([]byte, error) {
	start, plain, err := d.stringSpan()
	if err != nil {
		return nil, err
	}
	if plain {
		return d.b[start+1 : d.i-1], nil
	}
	var s string
	if err := json.Unmarshal(d.b[start:d.i], &s); err != nil {
		return nil, d.errorf("bad field name: %v", err)
	}
	return []byte(s), nil
}

// stringSpan consumes a string and returns where it began (its opening
// quote) and whether it is plain: no escapes, only printable ASCII or valid
// UTF-8, so its bytes are its value.
func (d *lexer) stringSpan() (int, bool, error) {
	start := d.i
	d.i++
	plain, ascii := true, true
	for d.i < len(d.b) {
		if len(d.b)-d.i >= 8 && !specialIn8(binary.LittleEndian.Uint64(d.b[d.i:])) {
			d.i += 8
			continue
		}
		c := d.b[d.i]
		if !stringSpecial[c] {
			d.i++
			continue
		}
		switch {
		case c == '"':
			d.i++
			if !ascii && !utf8.Valid(d.b[start+1:d.i-1]) {
				plain = false // encoding/json replaces bad bytes with U+FFFD
			}
			return start, plain, nil
		case c == '\\':
			plain = false
			d.i++
			if d.i >= len(d.b) {
				return 0, false, d.errorf("string ends early")
			}
			switch d.b[d.i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			case 'u':
				if len(d.b)-d.i < 5 || !isHex4(d.b[d.i+1:d.i+5]) {
					return 0, false, d.errorf("bad \\u escape in a string")
				}
				d.i += 4
			default:
				return 0, false, d.errorf("bad escape %s in a string", d.what())
			}
		case c < 0x20:
			return 0, false, d.errorf("control character %#02x in a string", c)
		case c >= 0x80:
			ascii = false
		}
		d.i++
	}
	return 0, false, d.errorf("string ends early")
}

// strRepeat is str for a field whose value is likely *prev; it leaves the
// value in *prev.
func (d *lexer) strRepeat(dst, prev *string) error {
	if d.peek() == '"' {
		start := d.i
		if _, plain, err := d.stringSpan(); err == nil && plain && string(d.b[start+1:d.i-1]) == *prev {
			*dst = *prev
			return nil
		}
		d.i = start
	}
	if err := d.str(dst); err != nil {
		return err
	}
	*prev = *dst
	return nil
}

// str decodes a string (null leaves dst as it is).
func (d *lexer) str(dst *string) error {
	if null, err := d.null(); null || err != nil {
		return err
	}
	if d.peek() != '"' {
		return d.errorf("want a string, got %s", d.what())
	}
	start, plain, err := d.stringSpan()
	if err != nil {
		return err
	}
	if plain {
		*dst = string(d.b[start+1 : d.i-1])
		return nil
	}
	if err := json.Unmarshal(d.b[start:d.i], dst); err != nil {
		return d.errorf("bad string: %v", err)
	}
	return nil
}

// numberSpan consumes a number and returns its text, checking its grammar.
func (d *lexer) numberSpan() (string, error) {
	start := d.i
	_, n, err := scanNumber(d.b[d.i:])
	if err != nil {
		return "", d.errorf("%v", err)
	}
	d.i += n
	return unsafe.String(&d.b[start], n), nil
}

// float decodes a number (null leaves dst as it is).
func (d *lexer) float(dst *float64) error {
	if null, err := d.null(); null || err != nil {
		return err
	}
	v, n, err := parseNumber(d.b[d.i:])
	if err != nil {
		return d.errorf("%v", err)
	}
	d.i += n
	*dst = v
	return nil
}

// integer decodes an integer with set (null leaves the field as it is); a
// number with a fraction or an exponent is an error, as in encoding/json.
func (d *lexer) integer(set func(string) error) error {
	if null, err := d.null(); null || err != nil {
		return err
	}
	s, err := d.numberSpan()
	if err != nil {
		return err
	}
	if err := set(s); err != nil {
		return fmt.Errorf("%s is not an integer of this field's range", s)
	}
	return nil
}

func parseInt(s string) (int, error) {
	if v, ok := smallUint(s); ok {
		return int(v), nil
	}
	v, err := strconv.ParseInt(s, 10, 0)
	return int(v), err
}

func parseUint(s string) (uint64, error) {
	if v, ok := smallUint(s); ok {
		return v, nil
	}
	return strconv.ParseUint(s, 10, 64)
}

// smallUint converts the digits of a non-negative integer of at most 18
// digits (no sign, fraction or exponent), which cannot overflow; anything
// else is left to strconv.
func smallUint(s string) (uint64, bool) {
	if len(s) == 0 || len(s) > 18 {
		return 0, false
	}
	var v uint64
	for i := 0; i < len(s); i++ {
		c := s[i] - '0'
		if c > 9 {
			return 0, false
		}
		v = v*10 + uint64(c)
	}
	return v, true
}

func (d *lexer) boolean(dst *bool) error {
	switch d.peek() {
	case 't':
		*dst = true
		return d.literal("true")
	case 'f':
		*dst = false
		return d.literal("false")
	case 'n':
		return d.literal("null")
	}
	return d.errorf("want true or false, got %s", d.what())
}

// ints decodes an array of integers into (*dst)[:0]; null sets nil.
func (d *lexer) ints(dst *[]int) error {
	if null, err := d.null(); null || err != nil {
		if null {
			*dst = nil
		}
		return err
	}
	out := (*dst)[:0]
	err := d.array(func(k int) error {
		return d.integer(func(s string) error {
			v, err := parseInt(s)
			out = append(out, v)
			return err
		})
	})
	*dst = out
	return err
}

// probs decodes the distribution into (*dst)[:0]; null sets nil.
func (d *lexer) probs(dst *Probs) error {
	if null, err := d.null(); null || err != nil {
		if null {
			*dst = nil
		}
		return err
	}
	if d.peek() != '[' {
		return d.errorf("want an array, got %s", d.what())
	}
	d.i++
	out := (*dst)[:0]
	defer func() { *dst = out }()
	if d.peek() == ']' {
		d.i++
		return nil
	}
	// The loop is the array walk of array, unrolled for numbers. Most of a
	// distribution is zeros, which take two byte comparisons, and most of
	// the rest repeat the number before (exploration spreads the same
	// probability over many arms), which takes one comparison of its bytes.
	b := d.b
	var last []byte // the text of the last nonzero number
	var lastV float64
	i := skipSpace(b, d.i)
	for {
		// The element.
		switch {
		case i+1 < len(b) && b[i] == '0' && !numberByte[b[i+1]]:
			out = append(out, 0)
			i++
		case len(last) > 0 && i+len(last) < len(b) && sameText(b[i:i+len(last)], last) && !numberByte[b[i+len(last)]]:
			out = append(out, lastV)
			i += len(last)
		default:
			v, n, err := parseNumber(b[i:])
			if err != nil {
				d.i = i
				return fmt.Errorf("[%d]: %w", len(out), d.errorf("%v", err))
			}
			out = append(out, v)
			last, lastV = b[i:i+n], v
			i += n
		}
		// The separator.
		if i < len(b) && b[i] == ',' {
			i = skipSpace(b, i+1)
			continue
		}
		i = skipSpace(b, i)
		switch {
		case i < len(b) && b[i] == ',':
			i = skipSpace(b, i+1)
		case i < len(b) && b[i] == ']':
			d.i = i + 1
			return nil
		default:
			d.i = i
			return d.errorf("want ',' or ']' in an array, got %s", d.what())
		}
	}
}

// array walks an array, calling elem for each element with the lexer at
// it.
func (d *lexer) array(elem func(k int) error) error {
	if d.peek() != '[' {
		return d.errorf("want an array, got %s", d.what())
	}
	d.i++
	if d.peek() == ']' {
		d.i++
		return nil
	}
	for k := 0; ; k++ {
		d.space()
		if err := elem(k); err != nil {
			return err
		}
		switch d.peek() {
		case ',':
			d.i++
		case ']':
			d.i++
			return nil
		default:
			return d.errorf("want ',' or ']' in an array, got %s", d.what())
		}
	}
}

// time decodes an RFC 3339 string the way time.Time's UnmarshalJSON does.
func (d *lexer) time(r *Record) error {
	if null, err := d.null(); null || err != nil {
		return err
	}
	if d.peek() != '"' {
		return d.errorf("want an RFC 3339 time string, got %s", d.what())
	}
	start, _, err := d.stringSpan()
	if err != nil {
		return err
	}
	if err := r.Time.UnmarshalJSON(d.b[start:d.i]); err != nil {
		return d.errorf("%v", err)
	}
	return nil
}

// accuracy decodes the optional accuracy signal; null sets nil.
func (d *lexer) accuracy(r *Record) error {
	if null, err := d.null(); null || err != nil {
		if null {
			r.Accuracy = nil
		}
		return err
	}
	var v float64
	if err := d.float(&v); err != nil {
		return err
	}
	r.Accuracy = &v
	return nil
}

// skip consumes any value, checking its grammar.
func (d *lexer) skip(depth int) error {
	if depth > maxDepth {
		return d.errorf("nested deeper than %d", maxDepth)
	}
	switch c := d.peek(); {
	case c == '{':
		return d.object(noFields, func(int, []byte) error { return d.skip(depth + 1) })
	case c == '[':
		return d.array(func(int) error { return d.skip(depth + 1) })
	case c == '"':
		_, _, err := d.stringSpan()
		return err
	case c == 't':
		return d.literal("true")
	case c == 'f':
		return d.literal("false")
	case c == 'n':
		return d.literal("null")
	default:
		_, err := d.numberSpan()
		return err
	}
}

func isHex4(b []byte) bool {
	for _, c := range b {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}

// stringSpecial marks the bytes a string scan must look at: the closing
// quote, escapes, control characters and the start of multi-byte UTF-8.
var stringSpecial = func() (t [256]bool) {
	for c := range t {
		t[c] = c == '"' || c == '\\' || c < 0x20 || c >= 0x80
	}
	return
}()

// specialIn8 reports whether any of the eight bytes in x is one stringSpan
// must look at (see stringSpecial), with the word tricks for "has a zero
// byte" ((v - 0x01..) &^ v & 0x80..) and "has a byte below n".
func specialIn8(x uint64) bool {
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	quote := x ^ ('"' * ones)
	backslash := x ^ ('\\' * ones)
	t := (quote - ones) &^ quote
	t |= (backslash - ones) &^ backslash
	t |= (x - 0x20*ones) &^ x // a byte below 0x20
	return (t|x)&highs != 0   // or a byte at or above 0x80
}

// numberByte marks the bytes that can continue a JSON number.
var numberByte = func() (t [256]bool) {
	for _, c := range []byte("0123456789.eE+-") {
		t[c] = true
	}
	return
}()

// sameText reports whether a and b (of one length) hold the same bytes,
// comparing the numbers a distribution repeats (8 to 16 bytes) as two
// overlapping words.
func sameText(a, b []byte) bool {
	if n := len(a); n >= 8 && n <= 16 {
		return binary.LittleEndian.Uint64(a) == binary.LittleEndian.Uint64(b) &&
			binary.LittleEndian.Uint64(a[n-8:]) == binary.LittleEndian.Uint64(b[n-8:])
	}
	return string(a) == string(b)
}
