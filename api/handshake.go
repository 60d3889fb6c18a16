package api

import (
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// IsHandshakeFailure reports whether a call failed because the TLS
// handshake did: the server's certificate is not for the address dialled,
// not signed by the CA given, expired, or the server speaks no TLS. gRPC
// reports these as Unavailable, like a server that is down, but waiting
// does not mend them: callers that retry while a server is unreachable
// should stop at once on these and say why.
func IsHandshakeFailure(err error) bool {
	st, ok := status.FromError(err)
	if !ok || st.Code() != codes.Unavailable {
		return false
	}
	// grpc-go's transport wraps every error of the credentials' handshake
	// in this phrase (internal/transport, newHTTP2Client).
	return strings.Contains(st.Message(), "authentication handshake failed")
}
