package cli

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/pflag"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/dynoml/dyno/executor/device"
)

// serveFlags are the flags of the device executor's application API.
type serveFlags struct {
	listen, socket, tokenFile string
	certFile, keyFile         string
	insecure                  bool
	depth                     int
	feedbackWindow            time.Duration
	shadowShare               float64
}

func (f *serveFlags) register(fl *pflag.FlagSet) {
	fl.StringVar(&f.listen, "api-listen", "", "serve the Device API for applications on this TCP address (e.g. 127.0.0.1:7072) instead of the built-in workload")
	fl.StringVar(&f.socket, "api-socket", "", "serve the Device API on this unix socket (with or without --api-listen)")
	fl.StringVar(&f.tokenFile, "api-token-file", "", "file holding the bearer token applications must send")
	fl.StringVar(&f.certFile, "api-tls-cert", "", "TLS certificate (PEM) of the Device API")
	fl.StringVar(&f.keyFile, "api-tls-key", "", "TLS private key (PEM) of the Device API")
	fl.BoolVar(&f.insecure, "api-insecure", false, "serve the Device API plaintext (one machine, or a unix socket only)")
	fl.IntVar(&f.depth, "depth", 8, "requests in flight at most (device, link and cloud stages overlap); beyond it ResourceExhausted")
	fl.DurationVar(&f.feedbackWindow, "feedback-window", 0, "a report without a label waits this long for Feedback (0: reports go at once, Feedback refused)")
	fl.Float64Var(&f.shadowShare, "shadow-share", 0, "share of unlabelled requests shadowed with the full-precision output for an agreement signal, in [0, 1]")
}

func (f *serveFlags) serving() bool { return f.listen != "" || f.socket != "" }

// check refuses flags that do not make a listener.
func (f *serveFlags) check() error {
	switch {
	case f.depth < 1:
		return usageError{fmt.Errorf("--depth %d: want at least 1", f.depth)}
	case !(f.shadowShare >= 0 && f.shadowShare <= 1):
		return usageError{fmt.Errorf("--shadow-share %g: want a share in [0, 1]", f.shadowShare)}
	case f.feedbackWindow < 0:
		return usageError{fmt.Errorf("--feedback-window %v: want zero or more", f.feedbackWindow)}
	case !f.serving():
		return nil
	case !f.insecure && (f.certFile == "" || f.keyFile == ""):
		return usageError{errors.New("the Device API: give --api-tls-cert and --api-tls-key, or --api-insecure to serve plaintext")}
	case f.tokenFile == "":
		return usageError{errors.New("the Device API: --api-token-file is required")}
	}
	return nil
}

// serveDevice serves the Device API on the listeners the flags name until
// ctx ends, then stops: in-flight calls finish, then the agent flushes.
func serveDevice(ctx context.Context, out io.Writer, log *slog.Logger, a *device.Agent, f serveFlags, flush time.Duration, label string) error {
	token, err := readToken(f.tokenFile, "--api-token-file")
	if err != nil {
		return errors.Join(err, a.Stop(flush))
	}
	var opts []grpc.ServerOption
	if !f.insecure {
		cert, err := tls.LoadX509KeyPair(f.certFile, f.keyFile)
		if err != nil {
			return errors.Join(err, a.Stop(flush))
		}
		opts = append(opts, grpc.Creds(credentials.NewTLS(&tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12})))
	}
	gs := device.NewGRPCServer(device.NewService(a), token, opts...)
	var lis []net.Listener
	closeAll := func() {
		for _, l := range lis {
			l.Close()
		}
	}
	if f.listen != "" {
		l, err := net.Listen("tcp", f.listen)
		if err != nil {
			return errors.Join(err, a.Stop(flush))
		}
		lis = append(lis, l)
	}
	if f.socket != "" {
		l, err := listenUnix(f.socket)
		if err != nil {
			closeAll()
			return errors.Join(err, a.Stop(flush))
		}
		lis = append(lis, l)
	}
	errs := make(chan error, len(lis))
	for _, l := range lis {
		fmt.Fprintf(out, "%s: serving the Device API on %s %s (depth %d, tls %v)\n", label, l.Addr().Network(), l.Addr(), f.depth, !f.insecure)
		log.Info("device API serving", "network", l.Addr().Network(), "addr", l.Addr().String())
		go func() { errs <- gs.Serve(l) }()
	}
	var serveErr error
	select {
	case <-ctx.Done():
	case serveErr = <-errs:
	}
	gs.GracefulStop()
	stopErr := a.Stop(flush)
	fmt.Fprintf(out, "%s: stopped; %d reports dropped; %d finished on the device because the cloud was unreachable\n", label, a.Dropped(), a.Fallbacks())
	return errors.Join(serveErr, stopErr)
}

// listenUnix listens on a unix socket at path, replacing a stale socket
// left there (never another kind of file), readable by the owner and
// group only.
func listenUnix(path string) (net.Listener, error) {
	if st, err := os.Lstat(path); err == nil {
		if st.Mode()&os.ModeSocket == 0 {
			return nil, fmt.Errorf("--api-socket %s: exists and is not a socket", path)
		}
		if c, err := net.Dial("unix", path); err == nil {
			c.Close()
			return nil, fmt.Errorf("--api-socket %s: another process serves on it", path)
		}
		if err := os.Remove(path); err != nil {
			return nil, err
		}
	}
	l, err := net.Listen("unix", path)
	if err != nil {
		return nil, err
	}
	if err := os.Chmod(path, 0o660); err != nil {
		l.Close()
		return nil, err
	}
	return l, nil
}

// private is the Device API served on a private unix socket.
type private struct {
	gs  *grpc.Server
	dir string
}

func (p *private) stop() {
	p.gs.GracefulStop()
	os.RemoveAll(p.dir)
}

// servePrivate serves a's Device API on a unix socket in a fresh private
// folder with a random token: for the built-in workload.
func servePrivate(a *device.Agent) (*private, string, string, error) {
	dir, err := os.MkdirTemp("", "dyno-device-")
	if err != nil {
		return nil, "", "", err
	}
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		os.RemoveAll(dir)
		return nil, "", "", err
	}
	token := hex.EncodeToString(b[:])
	path := filepath.Join(dir, "device.sock")
	l, err := net.Listen("unix", path)
	if err != nil {
		os.RemoveAll(dir)
		return nil, "", "", err
	}
	gs := device.NewGRPCServer(device.NewService(a), token)
	go gs.Serve(l)
	return &private{gs: gs, dir: dir}, "unix://" + path, token, nil
}
