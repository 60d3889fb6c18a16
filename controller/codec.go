package controller

import (
	"google.golang.org/grpc/encoding"
	_ "google.golang.org/grpc/encoding/proto" // registers the proto codec wrapped here
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/dynoml/dyno/api"
)

// preEncoded is a message already in its wire form: a head and a body
// sent one after the other, the body shared between streams.
type preEncoded struct {
	head, body []byte
}

// codec is the server's codec: protobuf, except that a preEncoded message is
// sent as it is. A new policy version goes to every watcher, and its
// encoding (tens of kilobytes) is made once, when it is published, rather
// than once per watcher.
type codec struct{ proto encoding.CodecV2 }

func newCodec() codec { return codec{proto: encoding.GetCodecV2("proto")} }

func (c codec) Marshal(v any) (mem.BufferSlice, error) {
	if p, ok := v.(*preEncoded); ok {
		return mem.BufferSlice{mem.SliceBuffer(p.head), mem.SliceBuffer(p.body)}, nil
	}
	return c.proto.Marshal(v)
}

func (c codec) Unmarshal(data mem.BufferSlice, v any) error { return c.proto.Unmarshal(data, v) }

func (c codec) Name() string { return c.proto.Name() }

// Field numbers of api.PolicyUpdate (codec_test.go checks them against the
// generated code).
const (
	updateKey     = 1
	updateVersion = 2
	updateNonce   = 3
	updatePolicy  = 4
)

// encodeUpdate is the wire form of api.PolicyUpdate{Key, Version, Nonce,
// Policy} whose Policy is already encoded as policy.
func encodeUpdate(key string, version uint64, nonce string, policy []byte) *preEncoded {
	head := make([]byte, 0, len(key)+len(nonce)+24)
	head = protowire.AppendTag(head, updateKey, protowire.BytesType)
	head = protowire.AppendString(head, key)
	head = protowire.AppendTag(head, updateVersion, protowire.VarintType)
	head = protowire.AppendVarint(head, version)
	head = protowire.AppendTag(head, updateNonce, protowire.BytesType)
	head = protowire.AppendString(head, nonce)
	head = protowire.AppendTag(head, updatePolicy, protowire.BytesType)
	head = protowire.AppendVarint(head, uint64(len(policy)))
	return &preEncoded{head: head, body: policy}
}

// published is a committed version: the message and its encoding.
type published struct {
	pol *api.Policy
	enc []byte
}
