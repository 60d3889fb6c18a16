// Command dyno-executor runs, profiles and calibrates split CNN blocks; the
// command tree lives in executor/cli.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/dynoml/dyno/executor/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Main(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
