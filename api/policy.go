package api

import (
	"bytes"
	"compress/flate"
	"fmt"
	"io"
)

// MaxBanditState bounds the decoded bandit state, so that a corrupt or
// hostile policy cannot make its reader allocate without limit.
const MaxBanditState = 64 << 20

// Encodings of Policy.bandit_state.
const (
	StateRaw     = ""
	StateDeflate = "deflate"
)

// DecodedBanditState returns the bandit state of the policy as the bandit
// package wrote it (bandit.Restore reads it), undoing its compression.
func (x *Policy) DecodedBanditState() ([]byte, error) {
	switch enc := x.GetBanditStateEncoding(); enc {
	case StateRaw:
		return x.GetBanditState(), nil
	case StateDeflate:
		r := flate.NewReader(bytes.NewReader(x.GetBanditState()))
		defer r.Close()
		out, err := io.ReadAll(io.LimitReader(r, MaxBanditState+1))
		if err != nil {
			return nil, fmt.Errorf("api: policy %s v%d: inflate bandit state: %w", x.GetKey(), x.GetVersion(), err)
		}
		if len(out) > MaxBanditState {
			return nil, fmt.Errorf("api: policy %s v%d: bandit state above %d bytes", x.GetKey(), x.GetVersion(), MaxBanditState)
		}
		return out, nil
	default:
		return nil, fmt.Errorf("api: policy %s v%d: unknown bandit state encoding %q", x.GetKey(), x.GetVersion(), enc)
	}
}

// EncodeBanditState compresses a bandit state for Policy.bandit_state and
// returns it with its encoding.
func EncodeBanditState(state []byte) ([]byte, string, error) {
	var b bytes.Buffer
	w, err := flate.NewWriter(&b, flate.BestSpeed)
	if err != nil {
		return nil, "", err
	}
	if _, err := w.Write(state); err != nil {
		return nil, "", err
	}
	if err := w.Close(); err != nil {
		return nil, "", err
	}
	return b.Bytes(), StateDeflate, nil
}
