package controller

import (
	"bufio"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path"
	"slices"
	"strconv"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
)

// Scope is what a token may do.
type Scope string

// Scopes.
const (
	// ScopeExecutor may register, report and watch policies.
	ScopeExecutor Scope = "executor"
	// ScopeAdmin may call every Admin method: status, keys, policy, pin,
	// unpin, reset, objective, traces, executors, backup.
	ScopeAdmin Scope = "admin"
)

// Token is one accepted bearer token. Only its SHA-256 is kept.
type Token struct {
	Name   string
	Scopes []Scope
	Hash   [sha256.Size]byte
	// ExecutorIDs, when not empty, limits the executor ids the token may
	// register, report and watch as to those matching one of these
	// patterns (path.Match syntax: "cam-*", "lab-[0-9]*").
	ExecutorIDs []string
	// MaxExecutors bounds how many executors the token's identity may own;
	// zero means Config.MaxExecutorsPerIdentity.
	MaxExecutors int
}

// NewToken makes a Token from its secret.
func NewToken(name, secret string, scopes ...Scope) Token {
	return Token{Name: name, Scopes: scopes, Hash: sha256.Sum256([]byte(secret))}
}

// ReadTokens reads a token file: one token a line,
//
//	NAME SCOPE[,SCOPE] SECRET [ids=PATTERN[,PATTERN]] [max-executors=N]
//
// where SECRET is the token itself or "sha256:" and its hex digest (so that
// the file need not hold secrets), ids limits the executor ids the token
// may act as (path.Match patterns) and max-executors how many executors it
// may own. Blank lines and lines starting with # are ignored.
func ReadTokens(r io.Reader) ([]Token, error) {
	var out []Token
	sc := bufio.NewScanner(r)
	names := map[string]bool{}
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Fields(line)
		if len(f) < 3 {
			return nil, fmt.Errorf("tokens line %d: want NAME SCOPES SECRET [ids=PATTERNS] [max-executors=N], got %d fields", n, len(f))
		}
		t := Token{Name: f[0]}
		if names[t.Name] {
			return nil, fmt.Errorf("tokens line %d: duplicate name %q", n, t.Name)
		}
		names[t.Name] = true
		for _, s := range strings.Split(f[1], ",") {
			switch Scope(s) {
			case ScopeExecutor, ScopeAdmin:
				t.Scopes = append(t.Scopes, Scope(s))
			default:
				return nil, fmt.Errorf("tokens line %d: unknown scope %q (executor, admin)", n, s)
			}
		}
		if h, ok := strings.CutPrefix(f[2], "sha256:"); ok {
			b, err := hex.DecodeString(h)
			if err != nil || len(b) != sha256.Size {
				return nil, fmt.Errorf("tokens line %d: sha256: want %d hex bytes", n, sha256.Size)
			}
			copy(t.Hash[:], b)
		} else {
			if len(f[2]) < 16 {
				return nil, fmt.Errorf("tokens line %d: token %q is shorter than 16 characters", n, t.Name)
			}
			t.Hash = sha256.Sum256([]byte(f[2]))
		}
		for _, opt := range f[3:] {
			k, v, _ := strings.Cut(opt, "=")
			switch k {
			case "ids":
				for _, pat := range strings.Split(v, ",") {
					if _, err := path.Match(pat, ""); err != nil || pat == "" {
						return nil, fmt.Errorf("tokens line %d: ids: %q is not a pattern (path.Match syntax)", n, pat)
					}
					t.ExecutorIDs = append(t.ExecutorIDs, pat)
				}
			case "max-executors":
				m, err := strconv.Atoi(v)
				if err != nil || m < 1 {
					return nil, fmt.Errorf("tokens line %d: max-executors: %q is not a positive number", n, v)
				}
				t.MaxExecutors = m
			default:
				return nil, fmt.Errorf("tokens line %d: unknown option %q (ids=PATTERNS, max-executors=N)", n, opt)
			}
		}
		out = append(out, t)
	}
	return out, sc.Err()
}

// LoadTokens reads a token file.
func LoadTokens(path string) ([]Token, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	ts, err := ReadTokens(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return ts, nil
}

// authenticator checks bearer tokens against the configured ones.
type authenticator struct {
	tokens []Token
	log    *slog.Logger
}

type tokenKey struct{}

// tokenName returns the name of the token that authenticated the call.
func tokenName(ctx context.Context) string {
	t, _ := ctx.Value(tokenKey{}).(*Token)
	if t == nil {
		return ""
	}
	return t.Name
}

// identity names who makes a call, for the ownership of executor ids: the
// subject of the client certificate that TLS verified, when the listener
// asks for one (mutual TLS), else the name of the bearer token.
func identity(ctx context.Context) string {
	if p, ok := peer.FromContext(ctx); ok {
		if ti, ok := p.AuthInfo.(credentials.TLSInfo); ok && len(ti.State.VerifiedChains) > 0 && len(ti.State.VerifiedChains[0]) > 0 {
			return "cert:" + ti.State.VerifiedChains[0][0].Subject.String()
		}
	}
	if n := tokenName(ctx); n != "" {
		return "token:" + n
	}
	return ""
}

// tokenOf returns the token that authenticated the call, or nil.
func tokenOf(ctx context.Context) *Token {
	t, _ := ctx.Value(tokenKey{}).(*Token)
	return t
}

// mayActAs says whether the call's token may act as executor id.
func mayActAs(ctx context.Context, id string) error {
	t := tokenOf(ctx)
	if t == nil || len(t.ExecutorIDs) == 0 {
		return nil
	}
	for _, pat := range t.ExecutorIDs {
		if ok, _ := path.Match(pat, id); ok {
			return nil
		}
	}
	return fmt.Errorf("%w: token %q may act only as executors matching %s, not %q", ErrPermission, t.Name, strings.Join(t.ExecutorIDs, ", "), id)
}

// scopeOf says which scope a full method name needs; "" needs none.
func scopeOf(method string) Scope {
	switch {
	case strings.HasPrefix(method, "/dyno.v1.Executor/"):
		return ScopeExecutor
	case strings.HasPrefix(method, "/dyno.v1.Admin/"):
		return ScopeAdmin
	case strings.HasPrefix(method, "/grpc.health.v1.Health/"), strings.HasPrefix(method, "/grpc.reflection."):
		return ""
	}
	// Anything else is refused: a method added without a scope is a bug.
	return ScopeAdmin
}

// check authenticates the call and returns the context carrying the token.
// Every configured token is compared, in constant time, whatever matches.
func (a *authenticator) check(ctx context.Context, method string) (context.Context, error) {
	need := scopeOf(method)
	if need == "" {
		return ctx, nil
	}
	refuse := func(code codes.Code, reason, name string) error {
		addr := ""
		if p, ok := peer.FromContext(ctx); ok {
			addr = p.Addr.String()
		}
		a.log.Warn("refused call", "method", method, "peer", addr, "reason", reason, "token_name", name)
		return status.Error(code, reason)
	}
	md, _ := metadata.FromIncomingContext(ctx)
	vals := md.Get("authorization")
	if len(vals) == 0 {
		return nil, refuse(codes.Unauthenticated, "missing bearer token (authorization metadata)", "")
	}
	// The scheme is case-insensitive (RFC 7235, section 2.1).
	scheme, secret, ok := strings.Cut(vals[0], " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return nil, refuse(codes.Unauthenticated, "authorization metadata is not \"Bearer TOKEN\"", "")
	}
	secret = strings.TrimLeft(secret, " ")
	h := sha256.Sum256([]byte(secret))
	var found *Token
	for i := range a.tokens {
		if subtle.ConstantTimeCompare(h[:], a.tokens[i].Hash[:]) == 1 {
			found = &a.tokens[i]
		}
	}
	if found == nil {
		return nil, refuse(codes.Unauthenticated, "invalid bearer token", "")
	}
	if !slices.Contains(found.Scopes, need) {
		return nil, refuse(codes.PermissionDenied, fmt.Sprintf("token %q lacks the %s scope that %s needs", found.Name, need, method), found.Name)
	}
	return context.WithValue(ctx, tokenKey{}, found), nil
}

func (a *authenticator) unary(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	ctx, err := a.check(ctx, info.FullMethod)
	if err != nil {
		return nil, err
	}
	return h(ctx, req)
}

func (a *authenticator) stream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
	ctx, err := a.check(ss.Context(), info.FullMethod)
	if err != nil {
		return err
	}
	return h(srv, &authedStream{ServerStream: ss, ctx: ctx})
}

type authedStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s *authedStream) Context() context.Context { return s.ctx }
