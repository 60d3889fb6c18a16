package api

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
)

// DialOptions say how to reach a controller.
type DialOptions struct {
	// Token is the bearer token sent with every call.
	Token string
	// TLS secures the connection. Nil is allowed only with Insecure.
	TLS *tls.Config
	// Insecure dials plaintext (a controller started with -insecure).
	Insecure bool
	// Extra options appended to the dial.
	Extra []grpc.DialOption
}

// Dial connects to a controller: TLS unless Insecure, and the bearer token
// on every call. The connection is lazy; the first call connects.
func Dial(addr string, o DialOptions) (*grpc.ClientConn, error) {
	var opts []grpc.DialOption
	switch {
	case o.TLS != nil:
		opts = append(opts, grpc.WithTransportCredentials(credentials.NewTLS(o.TLS)))
	case o.Insecure:
		opts = append(opts, grpc.WithTransportCredentials(insecure.NewCredentials()))
	default:
		return nil, errors.New("api: dial: TLS config required (or Insecure)")
	}
	if o.Token != "" {
		opts = append(opts, grpc.WithPerRPCCredentials(BearerToken{Token: o.Token, AllowInsecure: o.Insecure}))
	}
	opts = append(opts, o.Extra...)
	return grpc.NewClient(addr, opts...)
}

// BearerToken sends "authorization: Bearer TOKEN" with every call.
type BearerToken struct {
	Token string
	// AllowInsecure lets the token travel over plaintext connections.
	AllowInsecure bool
}

// GetRequestMetadata implements credentials.PerRPCCredentials.
func (b BearerToken) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + b.Token}, nil
}

// RequireTransportSecurity implements credentials.PerRPCCredentials.
func (b BearerToken) RequireTransportSecurity() bool { return !b.AllowInsecure }

// ClientTLS trusts the PEM certificates in caFile (a server's self-signed
// certificate, or the CA that signed it); an empty caFile uses the system
// roots. serverName, when set, is the name verified in the certificate.
func ClientTLS(caFile, serverName string) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS13, ServerName: serverName}
	if caFile == "" {
		return cfg, nil
	}
	pemBytes, err := os.ReadFile(caFile)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pemBytes) {
		return nil, fmt.Errorf("%s holds no PEM certificate", caFile)
	}
	cfg.RootCAs = pool
	return cfg, nil
}
