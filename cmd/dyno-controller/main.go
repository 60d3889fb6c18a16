// Command dyno-controller runs dyno's controller: executors report to it, it
// learns, keeps everything in one bbolt file and pushes policies back.
// `dyno-controller gen-cert` and `gen-token` make what it needs to start.
package main

import (
	"os"

	"github.com/dynoml/dyno/controller"
)

func main() { os.Exit(controller.Main(os.Args[1:], os.Stdout, os.Stderr)) }
