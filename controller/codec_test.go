package controller

import (
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/dynoml/dyno/api"
)

func TestEncodeUpdateMatchesProto(t *testing.T) {
	pol := &api.Policy{Key: "m/c/o", Version: 300, BanditState: []byte("state"), Reason: "reports", Pin: &api.Pin{By: "ops"}}
	enc, err := proto.Marshal(pol)
	if err != nil {
		t.Fatal(err)
	}
	p := encodeUpdate(pol.Key, pol.Version, "300-7", enc)
	var got api.PolicyUpdate
	if err := proto.Unmarshal(append(append([]byte(nil), p.head...), p.body...), &got); err != nil {
		t.Fatal(err)
	}
	want := &api.PolicyUpdate{Key: pol.Key, Version: pol.Version, Nonce: "300-7", Policy: pol}
	if !proto.Equal(&got, want) {
		t.Fatalf("decoded %v, want %v", &got, want)
	}
	c := newCodec()
	bs, err := c.Marshal(p)
	if err != nil || bs.Len() != len(p.head)+len(p.body) {
		t.Fatalf("codec: %d bytes, %v", bs.Len(), err)
	}
}

func TestBanditStateRoundTrips(t *testing.T) {
	state := []byte(strings.Repeat("dyno bandit state ", 1000))
	packed, enc, err := api.EncodeBanditState(state)
	if err != nil || enc != api.StateDeflate || len(packed) >= len(state) {
		t.Fatalf("%d -> %d bytes (%s), %v", len(state), len(packed), enc, err)
	}
	got, err := (&api.Policy{BanditState: packed, BanditStateEncoding: enc}).DecodedBanditState()
	if err != nil || string(got) != string(state) {
		t.Fatalf("round trip: %v", err)
	}
	if _, err := (&api.Policy{BanditState: []byte("junk"), BanditStateEncoding: enc}).DecodedBanditState(); err == nil {
		t.Fatal("junk inflated")
	}
	if _, err := (&api.Policy{BanditStateEncoding: "zstd"}).DecodedBanditState(); err == nil {
		t.Fatal("unknown encoding accepted")
	}
}
