// Command dynoctl is the operator's and developer's tool: cost-model plans,
// model splitting and the zoo, simulation, offline evaluation, and the
// controller's admin calls.
package main

import (
	"os"

	"github.com/dynoml/dyno/internal/dynoctl"
)

func main() { os.Exit(dynoctl.Main(os.Args[1:], os.Stdout, os.Stderr)) }
