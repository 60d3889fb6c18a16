package profile

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// The labelled data format of `dyno-executor calibrate --data`:
//
//   - a folder of .npy files, read in name order; each holds one input
//     (the model's input shape, leading 1s optional) or several stacked
//     along the first axis ([N, ...input shape]);
//   - or one .npy file of stacked inputs;
//   - labels (optional) in labels.txt inside the folder, or the file
//     --labels names: one line per input in the order above, holding the
//     class of every row the metric scores (one for a classifier, one per
//     time step or pixel otherwise), separated by spaces or commas. A line
//     may start with the .npy file's name ("cat01.npy 3"); then every line
//     must, and each file holds one input. Blank lines and lines starting
//     with # are skipped.
//
// .npy files are little-endian float32, float64, uint8, int32 or int64,
// C order (numpy.save writes this by default).

// LabelsFile is the name of the labels file inside a data folder.
const LabelsFile = "labels.txt"

// dataset is a calibration set: inputs and, if labelled, a label list per
// input.
type dataset struct {
	inputs [][]float32
	labels [][]int64 // nil without labels
	desc   string
}

// inputsIn returns how many model inputs of shape in an array of shape a
// holds: 1 if a is in (leading 1s aside), N if a is [N, in...] (leading
// 1s of in aside), 0 if neither (an image saved as HWC for a CHW model,
// say: refused rather than reinterpreted).
func inputsIn(a, in []int64) int {
	trim := func(s []int64) []int64 {
		for len(s) > 0 && s[0] == 1 {
			s = s[1:]
		}
		return s
	}
	core := trim(in)
	if slices.Equal(trim(a), core) {
		return 1
	}
	if len(a) >= 1 && a[0] > 0 {
		rest := a[1:]
		if slices.Equal(rest, in) || slices.Equal(trim(rest), core) && len(rest) <= len(in) {
			return int(a[0])
		}
	}
	return 0
}

// loadNpyData reads a folder of .npy files or one .npy file, and labels
// (labelsPath, else DIR/labels.txt where present).
func loadNpyData(path, labelsPath string, in []int64, limit int) (*dataset, error) {
	size := 1
	for _, d := range in {
		size *= int(d)
	}
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("calibrate: data: %w", err)
	}
	var files []string
	if st.IsDir() {
		files, _ = filepath.Glob(filepath.Join(path, "*.npy"))
		slices.Sort(files)
		if len(files) == 0 {
			return nil, fmt.Errorf("%w: data folder %s holds no .npy files", ErrConfig, path)
		}
		if labelsPath == "" {
			if p := filepath.Join(path, LabelsFile); fileExists(p) {
				labelsPath = p
			}
		}
	} else {
		files = []string{path}
	}
	ds := &dataset{}
	var owner []string // file of each input
	for _, f := range files {
		v, shape, err := readNpy(f)
		if err != nil {
			return nil, err
		}
		if k := inputsIn(shape, in); k == 0 || k*size != len(v) {
			return nil, fmt.Errorf("%w: %s: shape %v is neither the model's input %v nor a stack of them [N, ...]; save the inputs as the model takes them (channels first if it does)", ErrConfig, f, shape, in)
		}
		for i := 0; i < len(v); i += size {
			ds.inputs = append(ds.inputs, v[i:i+size])
			owner = append(owner, filepath.Base(f))
		}
	}
	ds.desc = fmt.Sprintf("%d inputs from %s", len(ds.inputs), path)
	if labelsPath != "" {
		labels, err := readLabels(labelsPath, owner)
		if err != nil {
			return nil, err
		}
		ds.labels = labels
		ds.desc += " labelled by " + labelsPath
	}
	if limit > 0 && limit < len(ds.inputs) {
		ds.inputs = ds.inputs[:limit]
		if ds.labels != nil {
			ds.labels = ds.labels[:limit]
		}
		ds.desc = fmt.Sprintf("the first %d of %s", limit, ds.desc)
	}
	return ds, nil
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// readLabels reads a labels file for inputs whose files are owner.
func readLabels(path string, owner []string) ([][]int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("calibrate: labels: %w", err)
	}
	defer f.Close()
	var rows [][]int64
	byName := map[string][]int64{}
	named := -1 // unknown until the first line
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	line := 0
	for sc.Scan() {
		line++
		s := strings.TrimSpace(sc.Text())
		if s == "" || strings.HasPrefix(s, "#") {
			continue
		}
		fields := strings.FieldsFunc(s, func(r rune) bool { return r == ' ' || r == '\t' || r == ',' })
		isNamed := strings.HasSuffix(fields[0], ".npy")
		if named == -1 {
			named = map[bool]int{false: 0, true: 1}[isNamed]
		} else if isNamed != (named == 1) {
			return nil, fmt.Errorf("%w: %s:%d: either every line starts with a .npy file name or none does", ErrConfig, path, line)
		}
		if isNamed {
			fields = fields[1:]
		}
		var ls []int64
		for _, x := range fields {
			v, err := strconv.ParseInt(x, 10, 64)
			if err != nil || v < 0 {
				return nil, fmt.Errorf("%w: %s:%d: label %q is not a non-negative integer class", ErrConfig, path, line, x)
			}
			ls = append(ls, v)
		}
		if len(ls) == 0 {
			return nil, fmt.Errorf("%w: %s:%d: no label", ErrConfig, path, line)
		}
		if isNamed {
			name := strings.Fields(s)[0]
			if _, dup := byName[name]; dup {
				return nil, fmt.Errorf("%w: %s:%d: %s is labelled twice", ErrConfig, path, line, name)
			}
			byName[name] = ls
		} else {
			rows = append(rows, ls)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("calibrate: labels %s: %w", path, err)
	}
	if named == 1 {
		seen := map[string]bool{}
		for _, o := range owner {
			if seen[o] {
				return nil, fmt.Errorf("%w: %s names files, but %s holds several inputs: label stacked files by line, without names", ErrConfig, path, o)
			}
			seen[o] = true
			ls, ok := byName[o]
			if !ok {
				return nil, fmt.Errorf("%w: %s has no line for %s", ErrConfig, path, o)
			}
			rows = append(rows, ls)
		}
		return rows, nil
	}
	if len(rows) != len(owner) {
		return nil, fmt.Errorf("%w: %s has %d label lines for %d inputs", ErrConfig, path, len(rows), len(owner))
	}
	return rows, nil
}

// readNpy reads a .npy file as float32 values and its shape.
func readNpy(path string) ([]float32, []int64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, fmt.Errorf("calibrate: data: %w", err)
	}
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s: not a .npy file numpy writes: %s", ErrConfig, path, fmt.Sprintf(format, args...))
	}
	if len(b) < 10 || string(b[:6]) != "\x93NUMPY" {
		return nil, nil, bad("no \\x93NUMPY magic")
	}
	var hlen, off int
	switch b[6] {
	case 1:
		hlen, off = int(binary.LittleEndian.Uint16(b[8:10])), 10
	case 2, 3:
		if len(b) < 12 {
			return nil, nil, bad("truncated header")
		}
		hlen, off = int(binary.LittleEndian.Uint32(b[8:12])), 12
	default:
		return nil, nil, bad("version %d", b[6])
	}
	if off+hlen > len(b) {
		return nil, nil, bad("header of %d bytes runs past the file", hlen)
	}
	header := string(b[off : off+hlen])
	data := b[off+hlen:]
	descr := npyField(header, "descr")
	if strings.Contains(npyField(header, "fortran_order"), "True") {
		return nil, nil, bad("fortran_order is True; save a C-ordered array (numpy.ascontiguousarray)")
	}
	shapeText := strings.Trim(npyField(header, "shape"), "() ")
	var shape []int64
	n := int64(1)
	for _, f := range strings.Split(shapeText, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		d, err := strconv.ParseInt(f, 10, 64)
		if err != nil || d < 0 {
			return nil, nil, bad("shape %q", shapeText)
		}
		shape = append(shape, d)
		n *= d
	}
	descr = strings.Trim(descr, "'\" ")
	sizes := map[string]int{"<f4": 4, "<f8": 8, "|u1": 1, "<u1": 1, "<i4": 4, "<i8": 8}
	sz, ok := sizes[descr]
	if !ok {
		return nil, nil, bad("element type %q (read: <f4, <f8, |u1, <i4, <i8)", descr)
	}
	if int64(len(data)) != n*int64(sz) {
		return nil, nil, bad("%d data bytes for shape %v of %s (%d expected)", len(data), shape, descr, n*int64(sz))
	}
	out := make([]float32, n)
	for i := range out {
		switch descr {
		case "<f4":
			out[i] = math.Float32frombits(binary.LittleEndian.Uint32(data[4*i:]))
		case "<f8":
			out[i] = float32(math.Float64frombits(binary.LittleEndian.Uint64(data[8*i:])))
		case "|u1", "<u1":
			out[i] = float32(data[i])
		case "<i4":
			out[i] = float32(int32(binary.LittleEndian.Uint32(data[4*i:])))
		case "<i8":
			out[i] = float32(int64(binary.LittleEndian.Uint64(data[8*i:])))
		}
	}
	return out, shape, nil
}

// npyField returns the text of one key of a .npy header dictionary.
func npyField(header, key string) string {
	i := strings.Index(header, "'"+key+"'")
	if i < 0 {
		return ""
	}
	rest := strings.TrimLeft(header[i+len(key)+2:], " :")
	if strings.HasPrefix(rest, "(") {
		if j := strings.Index(rest, ")"); j >= 0 {
			return rest[:j+1]
		}
	}
	if j := strings.IndexAny(rest, ",}"); j >= 0 {
		return rest[:j]
	}
	return rest
}

// WriteNpy writes float32 values of a shape as a .npy file (for tests and
// for users preparing calibration data without numpy).
func WriteNpy(path string, shape []int64, v []float32) error {
	var dims []string
	for _, d := range shape {
		dims = append(dims, strconv.FormatInt(d, 10))
	}
	s := strings.Join(dims, ", ")
	if len(dims) == 1 {
		s += ","
	}
	header := fmt.Sprintf("{'descr': '<f4', 'fortran_order': False, 'shape': (%s), }", s)
	pad := 64 - (10+len(header)+1)%64
	header += strings.Repeat(" ", pad%64) + "\n"
	b := make([]byte, 0, 10+len(header)+4*len(v))
	b = append(b, "\x93NUMPY\x01\x00"...)
	b = binary.LittleEndian.AppendUint16(b, uint16(len(header)))
	b = append(b, header...)
	for _, x := range v {
		b = binary.LittleEndian.AppendUint32(b, math.Float32bits(x))
	}
	return os.WriteFile(path, b, 0o644)
}
