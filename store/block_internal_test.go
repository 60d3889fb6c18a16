package store

import (
	"encoding/binary"
	"testing"
)

// FuzzDecodeBlock: whatever a block's bytes hold, decoding returns an error
// or entries that lie inside them, and never panics.
func FuzzDecodeBlock(f *testing.F) {
	v := binary.AppendUvarint(nil, 2)
	v = binary.AppendUvarint(v, 3)
	v = append(v, 1, 2, 3)
	v = binary.AppendUvarint(v, 0)
	f.Add(v)
	f.Add([]byte{})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Fuzz(func(t *testing.T, v []byte) {
		bl, err := decodeBlock(be64(7), v)
		if err != nil {
			return
		}
		total := 0
		for _, e := range bl.entries {
			total += len(e)
			for _, tr := range [][]byte{e} {
				DecodeTrace(bl.first, tr)
			}
		}
		if total > len(v) {
			t.Fatalf("entries of %d bytes from a block of %d", total, len(v))
		}
	})
}
