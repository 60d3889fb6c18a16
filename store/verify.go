package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"os"
	"syscall"
	"time"
)

// verifyFile walks the bbolt structure of the file at path with plain reads,
// before bbolt maps it: the meta pages (magic, version, checksum), the file
// size against the pages the meta page counts, and every page reachable from
// the root (its id, type, overflow and element bounds, each page used once).
// bbolt trusts all of these: a file shorter than its meta page says faults
// with SIGBUS when a page beyond its end is touched, and a zeroed or
// scrambled page makes it panic or read out of bounds. It returns the pages
// reached, for tests that damage them.
//
// bbolt keeps two meta pages and, when the newer is damaged, opens the file
// at the older one (the transaction before). dyno refuses such a file too,
// unless allowMetaFallback: the last commit would be lost silently.
func verifyFile(f *os.File, allowMetaFallback bool) (reached []uint64, err error) {
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	size := fi.Size()
	m0, err0 := readMeta(f, 0, 0)
	pageSize := 0
	if err0 == nil {
		pageSize = int(m0.pageSize)
	}
	var m1 meta
	err1 := fmt.Errorf("no second meta page: %w", errNoMagic)
	if pageSize != 0 {
		m1, err1 = readMeta(f, int64(pageSize), pageSize)
	} else {
		for ps := 1024; ps <= 1<<16; ps *= 2 {
			if m, err := readMeta(f, int64(ps), ps); err == nil {
				m1, err1, pageSize = m, nil, ps
				break
			}
		}
	}
	var m meta
	switch {
	case err0 != nil && err1 != nil:
		if errors.Is(err0, errNoMagic) && errors.Is(err1, errNoMagic) {
			return nil, fmt.Errorf("%w: not a bbolt file (no meta page)", ErrNotStore)
		}
		return nil, fmt.Errorf("%w: both meta pages are damaged (page 0: %v; page 1: %v)", ErrCorrupt, err0, err1)
	case err0 != nil || err1 != nil:
		bad, good, why := 0, m1, err0
		if err1 != nil {
			bad, good, why = 1, m0, err1
		}
		if !allowMetaFallback {
			return nil, fmt.Errorf("%w: meta page %d is damaged (%v); bbolt would open the file at the other meta page, transaction %d, and lose what came after it", ErrCorrupt, bad, why, good.txid)
		}
		m = good
	default:
		m = m0
		if m1.txid > m0.txid {
			m = m1
		}
	}
	if m.pgid < 4 {
		return nil, fmt.Errorf("%w: the meta page counts %d pages, a bbolt file has at least 4", ErrCorrupt, m.pgid)
	}
	if need := int64(m.pgid) * int64(pageSize); size < need {
		return nil, fmt.Errorf("%w: truncated: the meta page counts %d pages of %d bytes (%d bytes), the file has %d", ErrCorrupt, m.pgid, pageSize, need, size)
	}
	w := &walker{f: f, pageSize: pageSize, hwm: m.pgid, seen: map[uint64]bool{0: true, 1: true}}
	if m.freelist != noFreelist {
		if err := w.visit(m.freelist, pageFreelist); err != nil {
			return nil, err
		}
	}
	if err := w.bucket(m.root, nil, 0); err != nil {
		return nil, err
	}
	return w.reached, nil
}

// The layout of bbolt's pages (go.etcd.io/bbolt/internal/common).
const (
	boltMagic      = 0xED0CDAED
	boltVersion    = 2
	pageHeaderSize = 16
	elemSize       = 16 // branch and leaf elements alike
	metaSumBytes   = 56 // what the meta page's checksum covers
	pageBranch     = 0x01
	pageLeaf       = 0x02
	pageMeta       = 0x04
	pageFreelist   = 0x10
	leafIsBucket   = 0x01
	noFreelist     = ^uint64(0)
	maxDepth       = 64
)

type meta struct {
	pageSize             uint32
	root                 uint64
	freelist, pgid, txid uint64
}

var errNoMagic = errors.New("no bbolt magic")

func readMeta(f io.ReaderAt, off int64, wantPageSize int) (meta, error) {
	b := make([]byte, pageHeaderSize+64)
	if n, err := f.ReadAt(b, off); err != nil {
		if n >= pageHeaderSize+4 && binary.LittleEndian.Uint32(b[pageHeaderSize:]) == boltMagic {
			return meta{}, fmt.Errorf("truncated in the meta page: %v", err)
		}
		return meta{}, errNoMagic
	}
	if binary.LittleEndian.Uint16(b[8:]) != pageMeta {
		if binary.LittleEndian.Uint32(b[pageHeaderSize:]) != boltMagic {
			return meta{}, errNoMagic
		}
		return meta{}, fmt.Errorf("page type %#x is not meta", binary.LittleEndian.Uint16(b[8:]))
	}
	d := b[pageHeaderSize:]
	if binary.LittleEndian.Uint32(d) != boltMagic {
		return meta{}, errNoMagic
	}
	if v := binary.LittleEndian.Uint32(d[4:]); v != boltVersion {
		return meta{}, fmt.Errorf("bbolt version %d, want %d", v, boltVersion)
	}
	h := fnv.New64a()
	h.Write(d[:metaSumBytes])
	if h.Sum64() != binary.LittleEndian.Uint64(d[metaSumBytes:]) {
		return meta{}, errors.New("checksum mismatch")
	}
	m := meta{pageSize: binary.LittleEndian.Uint32(d[8:]), root: binary.LittleEndian.Uint64(d[16:]),
		freelist: binary.LittleEndian.Uint64(d[32:]), pgid: binary.LittleEndian.Uint64(d[40:]), txid: binary.LittleEndian.Uint64(d[48:])}
	if m.pageSize < 512 || m.pageSize > 1<<20 || m.pageSize&(m.pageSize-1) != 0 {
		return meta{}, fmt.Errorf("page size %d", m.pageSize)
	}
	if wantPageSize != 0 && int(m.pageSize) != wantPageSize {
		return meta{}, fmt.Errorf("page size %d where the first meta page says %d", m.pageSize, wantPageSize)
	}
	return m, nil
}

type walker struct {
	f        io.ReaderAt
	pageSize int
	hwm      uint64
	seen     map[uint64]bool
	reached  []uint64
	// free holds page buffers done with, for the next reads.
	free [][]byte
}

func (w *walker) buf() []byte {
	if n := len(w.free); n > 0 {
		b := w.free[n-1]
		w.free = w.free[:n-1]
		return b
	}
	return make([]byte, w.pageSize)
}

// release returns a buffer of read for reuse; b must not be used after.
func (w *walker) release(b []byte) {
	if len(b) == w.pageSize {
		w.free = append(w.free, b)
	}
}

// visit reads a page and checks its header; it returns its bytes (with its
// overflow pages).
func (w *walker) read(id uint64, want uint16) ([]byte, error) {
	if id < 2 || id >= w.hwm {
		return nil, fmt.Errorf("%w: page %d is referenced but outside the file's %d pages", ErrCorrupt, id, w.hwm)
	}
	if w.seen[id] {
		return nil, fmt.Errorf("%w: page %d is referenced twice", ErrCorrupt, id)
	}
	b := w.buf()
	if _, err := w.f.ReadAt(b, int64(id)*int64(w.pageSize)); err != nil {
		return nil, fmt.Errorf("%w: page %d: %v", ErrCorrupt, id, err)
	}
	hdr := b[:pageHeaderSize]
	if got := binary.LittleEndian.Uint64(hdr); got != id {
		return nil, fmt.Errorf("%w: page %d holds the header of page %d", ErrCorrupt, id, got)
	}
	flags := binary.LittleEndian.Uint16(hdr[8:])
	if flags&want == 0 || flags&(flags-1) != 0 {
		return nil, fmt.Errorf("%w: page %d has type %#x where a %s page belongs", ErrCorrupt, id, flags, pageKind(want))
	}
	over := uint64(binary.LittleEndian.Uint32(hdr[12:]))
	if id+over >= w.hwm {
		return nil, fmt.Errorf("%w: page %d overflows %d pages beyond the file's %d", ErrCorrupt, id, over, w.hwm)
	}
	for i := uint64(0); i <= over; i++ {
		if w.seen[id+i] {
			return nil, fmt.Errorf("%w: page %d is used twice", ErrCorrupt, id+i)
		}
		w.seen[id+i] = true
		w.reached = append(w.reached, id+i)
	}
	if over > 0 {
		b = append(b, make([]byte, over*uint64(w.pageSize))...)
		if _, err := w.f.ReadAt(b[w.pageSize:], int64(id+1)*int64(w.pageSize)); err != nil {
			return nil, fmt.Errorf("%w: page %d: %v", ErrCorrupt, id, err)
		}
	}
	return b, nil
}

func pageKind(f uint16) string {
	switch f {
	case pageFreelist:
		return "freelist"
	case pageMeta:
		return "meta"
	}
	return "branch or leaf"
}

func (w *walker) visit(id uint64, want uint16) error {
	b, err := w.read(id, want)
	w.release(b)
	return err
}

// bucket walks a bucket: from its root page, or (root 0) the inline page.
func (w *walker) bucket(root uint64, inline []byte, depth int) error {
	if depth > maxDepth {
		return fmt.Errorf("%w: buckets nested deeper than %d", ErrCorrupt, maxDepth)
	}
	if root == 0 {
		return w.node(inline, depth, true)
	}
	return w.tree(root, depth, 0)
}

func (w *walker) tree(id uint64, depth, level int) error {
	if level > maxDepth {
		return fmt.Errorf("%w: page %d: a tree deeper than %d", ErrCorrupt, id, maxDepth)
	}
	b, err := w.read(id, pageBranch|pageLeaf)
	if err != nil {
		return err
	}
	defer w.release(b)
	if binary.LittleEndian.Uint16(b[8:]) == pageBranch {
		n := int(binary.LittleEndian.Uint16(b[10:]))
		if pageHeaderSize+n*elemSize > len(b) {
			return fmt.Errorf("%w: branch page %d: %d elements do not fit", ErrCorrupt, id, n)
		}
		for i := 0; i < n; i++ {
			e := pageHeaderSize + i*elemSize
			pos, ksize := int(binary.LittleEndian.Uint32(b[e:])), int(binary.LittleEndian.Uint32(b[e+4:]))
			if e+pos+ksize > len(b) || ksize == 0 {
				return fmt.Errorf("%w: branch page %d: element %d is out of the page", ErrCorrupt, id, i)
			}
			if err := w.tree(binary.LittleEndian.Uint64(b[e+8:]), depth, level+1); err != nil {
				return err
			}
		}
		return nil
	}
	return w.node(b, depth, false)
}

// node checks the elements of a leaf page (or an inline bucket's page) and
// walks the buckets it holds.
func (w *walker) node(b []byte, depth int, inline bool) error {
	if len(b) < pageHeaderSize {
		return fmt.Errorf("%w: an inline bucket of %d bytes", ErrCorrupt, len(b))
	}
	id := binary.LittleEndian.Uint64(b)
	if inline && binary.LittleEndian.Uint16(b[8:]) != pageLeaf {
		return fmt.Errorf("%w: an inline bucket's page has type %#x", ErrCorrupt, binary.LittleEndian.Uint16(b[8:]))
	}
	n := int(binary.LittleEndian.Uint16(b[10:]))
	if pageHeaderSize+n*elemSize > len(b) {
		return fmt.Errorf("%w: leaf page %d: %d elements do not fit", ErrCorrupt, id, n)
	}
	for i := 0; i < n; i++ {
		e := pageHeaderSize + i*elemSize
		flags := binary.LittleEndian.Uint32(b[e:])
		pos, ksize, vsize := int(binary.LittleEndian.Uint32(b[e+4:])), int(binary.LittleEndian.Uint32(b[e+8:])), int(binary.LittleEndian.Uint32(b[e+12:]))
		end := e + pos + ksize + vsize
		if pos < 0 || end > len(b) || end < e {
			return fmt.Errorf("%w: leaf page %d: element %d is out of the page", ErrCorrupt, id, i)
		}
		if flags&^leafIsBucket != 0 {
			return fmt.Errorf("%w: leaf page %d: element %d has flags %#x", ErrCorrupt, id, i, flags)
		}
		if flags&leafIsBucket == 0 {
			continue
		}
		v := b[e+pos+ksize : end]
		if len(v) < 16 {
			return fmt.Errorf("%w: leaf page %d: bucket %q has a header of %d bytes", ErrCorrupt, id, b[e+pos:e+pos+ksize], len(v))
		}
		if err := w.bucket(binary.LittleEndian.Uint64(v), v[16:], depth+1); err != nil {
			return err
		}
	}
	return nil
}

// lockShared takes a shared lock of the file, as a read-only bbolt does,
// waiting up to timeout while a writer (a running controller) holds it.
func lockShared(f *os.File, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_SH|syscall.LOCK_NB)
		if err == nil {
			return nil
		}
		if err != syscall.EWOULDBLOCK || time.Now().After(deadline) {
			return err
		}
		time.Sleep(50 * time.Millisecond)
	}
}
