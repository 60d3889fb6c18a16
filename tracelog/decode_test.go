package tracelog

import (
	"bytes"
	"encoding/json"
	"math"
	"math/rand/v2"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

// decodeLines are records as the writers produce them and as people might
// write them by hand: whitespace, escapes, nulls, unknown and nested
// fields, other key cases, duplicates, every number form.
var decodeLines = []string{
	`{"schema":1,"id":"m","eligible_mask":"0b01","allowed_bits":[32,8],"arm_index":0,"arm":{"split":0,"bits":32},"propensity":1}`,
	`{"schema":1,"id":"req-1","key":"resnet50/phone-low/min-latency","executor":"dev-1","seq":2,"time":"2026-11-28T12:00:01Z","policy":"dyno","policy_version":7,"conditions":{"bandwidth_mbps":1.5,"rtt_ms":40},"eligible":[0,1,2],"arm_index":1,"arm":{"split":1,"bits":8},"explore":true,"propensity":0.25,"probs":[0.5,0.25,0.25],"observed":{"device_ms":10,"pack_ms":0.5,"bytes":1000,"network_ms":5.3,"rtt_ms":40,"cloud_queue_ms":0,"cloud_ms":2,"unpack_ms":0},"accuracy":1,"cost":57.8}`,
	` { "schema" : 1 , "id" : "a\"b\\c\u00e9\ud83d\ude00" , "time" : "2026-11-28T12:00:01.123456789+02:00" , "probs" : [ 1 ] , "propensity" : 1e0 } `,
	`{"SCHEMA":1,"Id":"x","Conditions":{"Bandwidth_Mbps":2.5e-3,"RTT_MS":1E+2},"ARM":{"Split":3,"BITS":4},"arm_index":0,"propensity":1}`,
	`{"schema":1,"id":"x","extra":{"a":[1,2,{"b":null}],"c":"d\n"},"more":[true,false,null,-0.5e-7],"propensity":1,"arm_index":0}`,
	`{"schema":1,"id":"x","accuracy":null,"probs":null,"eligible":null,"conditions":null,"explore":null,"time":null,"propensity":1,"arm_index":0}`,
	`{"schema":1,"id":"x","key":"k2","executor":"e2","policy":"static","propensity":1,"arm_index":0}`,
	`{"schema":1,"id":"x","key":"resnet50/phone-low/min-latency","executor":"e2","policy":"dyno","propensity":1,"arm_index":0}`,
	`{"schema":1,"id":"first","id":"second","probs":[0.5,0.5],"probs":[1],"conditions":{"rtt_ms":3},"conditions":{"bandwidth_mbps":4},"propensity":1,"arm_index":0}`,
	`{"schema":1,"id":"x","probs":[0,0.1,0.1,0.1,0.10,0.1e0,1e-1,0.7e-0,0,0],"propensity":0.1,"arm_index":1,"cost":-0}`,
	`{"schema":1,"id":"x","cost":123456789012345678901234567890,"propensity":0.12345678901234567890123,"arm_index":0,"observed":{"bytes":1.7976931348623157e308,"device_ms":4.9e-324}}`,
	`{"schema":1,"id":"\u0069d","\u0069d":"escaped key","propensity":1,"arm_index":0}`,
	`{"schema":1,"id":"bad utf8 ` + "\xff\xfe" + `","propensity":1,"arm_index":0}`,
	`{}`,
}

// malformedLines are not JSON, or not this schema's types: both decoders
// refuse them.
var malformedLines = []string{
	`{"schema":1,"id":"x",}`,
	`{"schema":1.5}`,
	`{"schema":1e2}`,
	`{"seq":-1}`,
	`{"arm_index":99999999999999999999}`,
	`{"probs":[0.5,,0.5]}`,
	`{"probs":[01]}`,
	`{"probs":[.5]}`,
	`{"probs":[1.]}`,
	`{"probs":[+1]}`,
	`{"probs":[NaN]}`,
	`{"probs":[1e400]}`,
	`{"probs":[0.5 0.5]}`,
	`{"probs":[0.5]`,
	`{"cost":"1"}`,
	`{"id":1}`,
	`{"explore":1}`,
	`{"id":"a` + "\x01" + `b"}`,
	`{"id":"\x"}`,
	`{"id":"\u12"}`,
	`{"time":"yesterday"}`,
	`{"time":12}`,
	`{"unknown":[1,2}`,
	`{"a":1} {"b":2}`,
	`[1,2]`,
	`"id"`,
	``,
}

// sameDecode checks decode against encoding/json on one line: whatever one
// accepts as a valid record the other accepts with the same fields, and
// anything one refuses the other does not turn into a valid record.
func sameDecode(t *testing.T, line []byte, prev *repeats) {
	t.Helper()
	var ours, std Record
	errOurs := decode(line, &ours, prev)
	errStd := json.Unmarshal(line, &std)
	if errOurs == nil && ours.Validate() == nil || errStd == nil && std.Validate() == nil {
		if errOurs != nil || errStd != nil {
			t.Fatalf("%q: decode error %v, encoding/json error %v", line, errOurs, errStd)
		}
	}
	if errOurs != nil || errStd != nil {
		return
	}
	norm := func(r *Record) {
		if len(r.Probs) == 0 {
			r.Probs = nil
		}
		if len(r.Eligible) == 0 {
			r.Eligible = nil
		}
		if len(r.AllowedBits) == 0 {
			r.AllowedBits = nil
		}
	}
	norm(&ours)
	norm(&std)
	if !reflect.DeepEqual(ours, std) {
		t.Fatalf("%q:\n decode        %+v\n encoding/json %+v", line, ours, std)
	}
}

func TestDecodeMatchesEncodingJSON(t *testing.T) {
	prev := &repeats{} // shared, as a Reader shares it across lines
	for _, line := range append(decodeLines, decodeLines...) {
		var r Record
		if err := decode([]byte(line), &r, nil); err != nil {
			t.Errorf("%s: %v", line, err)
		}
		sameDecode(t, []byte(line), prev)
	}
	for _, line := range malformedLines {
		var r Record
		if err := decode([]byte(line), &r, nil); err == nil {
			t.Errorf("%s: accepted", line)
		}
		if err := json.Unmarshal([]byte(line), &r); err == nil {
			t.Errorf("%s: encoding/json accepts it: the case is wrong", line)
		}
	}
	// Every way the writer formats a probability, and numbers of every
	// length and exponent, read back to the bit.
	rng := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 20000; i++ {
		var v float64
		switch i % 4 {
		case 0:
			v = rng.Float64()
		case 1:
			v = float64(float32(rng.Float64()))
		case 2:
			v = math.Ldexp(rng.Float64(), rng.IntN(200)-100)
		default:
			v = float64(rng.IntN(1000000)) / math.Pow10(rng.IntN(12))
		}
		for _, text := range []string{
			strconv.FormatFloat(v, 'g', -1, 64), strconv.FormatFloat(v, 'g', -1, 32), strconv.FormatFloat(v, 'e', rng.IntN(20), 64),
			strconv.FormatFloat(v, 'f', rng.IntN(25), 64), "-" + strconv.FormatFloat(v, 'g', -1, 64),
		} {
			want, err := strconv.ParseFloat(text, 64)
			if err != nil {
				t.Fatal(err)
			}
			got, n, err := parseNumber([]byte(text + ","))
			if err != nil || n != len(text) || math.Float64bits(got) != math.Float64bits(want) {
				t.Fatalf("%s: got %v (%d bytes, %v), want %v", text, got, n, err, want)
			}
		}
	}
}

func TestDecodeErrorsNameTheField(t *testing.T) {
	for line, want := range map[string]string{
		`{"schema":1,"probs":[0.5,x]}`:          "probs: [1]: at byte 26: unexpected 'x' in a number",
		`{"schema":1,"observed":{"bytes":"1"}}`: `observed: at byte 33: unexpected '"' in a number`,
		`{"schema":1.5}`:                        "schema: 1.5 is not an integer",
		`{"schema":1,}`:                         "at byte 13: want a field name, got '}'",
		`{"schema":1} x`:                        "at byte 14: unexpected 'x' after the record",
		`{"id":"abc`:                            "string ends early",
	} {
		var r Record
		if err := decode([]byte(line), &r, nil); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: error %v, want %q", line, err, want)
		}
	}
}

func TestProbsJSON(t *testing.T) {
	p := Probs{0.1, 1.0 / 3, 0, 2.0 / 3 * 0.9, 1e-30}
	b, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	if want := `[0.1,0.33333334,0,0.6,1e-30]`; string(b) != want {
		t.Fatalf("marshal %s, want %s", b, want)
	}
	var back Probs
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	for i := range p {
		if math.Abs(back[i]-p[i]) > 1e-7*p[i] {
			t.Errorf("probs[%d]: %v read back as %v", i, p[i], back[i])
		}
	}
	if _, err := json.Marshal(Probs{math.NaN()}); err == nil {
		t.Error("NaN probability marshalled")
	}
	if err := json.Unmarshal([]byte(`[0.5,"x"]`), &back); err == nil {
		t.Error("string in probs accepted")
	}
}

func FuzzDecode(f *testing.F) {
	for _, line := range append(decodeLines, malformedLines...) {
		f.Add([]byte(line))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		// Case folding of non-ASCII keys is encoding/json's own, which
		// strings.EqualFold need not match rune for rune.
		if bytes.ContainsFunc(line, func(r rune) bool { return r >= 0x80 }) || bytes.Contains(line, []byte(`\u`)) {
			var r Record
			_ = decode(line, &r, nil)
			return
		}
		sameDecode(t, line, nil)
	})
}

// The 128-bit path converts 17 to 19 digit numbers to the float64 strconv
// gives, and leaves very few to strconv.
func TestWideNumbersAreExact(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	undecided := 0
	const n = 300000
	for i := 0; i < n; i++ {
		nd := 16 + rng.IntN(4)
		mant := rng.Uint64N(uint64(math.Pow10(nd)))
		exp := rng.IntN(2*wideExp+1) - wideExp
		text := strconv.FormatUint(mant, 10) + "e" + strconv.Itoa(exp)
		if i%7 == 0 {
			// Halfway cases: an odd multiple of half a unit above 2^53.
			mant = 1<<53 + uint64(rng.IntN(1000))*2 + 1
			text, exp = strconv.FormatUint(mant, 10), 0
		}
		want, err := strconv.ParseFloat(text, 64)
		if err != nil {
			t.Fatal(err)
		}
		num, _, err := scanNumber([]byte(text))
		if err != nil || num.nd > 19 {
			t.Fatalf("%s: %+v %v", text, num, err)
		}
		got, ok := wide(num)
		if !ok {
			undecided++
			continue
		}
		if math.Float64bits(got) != math.Float64bits(want) {
			t.Fatalf("%s: wide gives %v (%x), strconv %v (%x)", text, got, math.Float64bits(got), want, math.Float64bits(want))
		}
	}
	// Left over are the ties the rounded-down powers cannot place.
	if undecided > n/200 {
		t.Errorf("%d of %d numbers left to strconv", undecided, n)
	}
	t.Logf("%d of %d left to strconv", undecided, n)
}

func FuzzNumber(f *testing.F) {
	for _, s := range []string{"0", "-0.0", "1e22", "72933365139440145e-1", "9007199254740993", "0.01369863", "1.7976931348623157e308", "4.9e-324", "123456789012345678901234"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, n, err := parseNumber([]byte(s))
		if err != nil {
			return
		}
		want, serr := strconv.ParseFloat(s[:n], 64)
		if serr != nil {
			t.Fatalf("%q: parsed %v, strconv refuses: %v", s[:n], got, serr)
		}
		if math.Float64bits(got) != math.Float64bits(want) {
			t.Fatalf("%q: got %v, strconv %v", s[:n], got, want)
		}
	})
}
