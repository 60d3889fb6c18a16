// Command ortcheck loads the ONNX Runtime shared library through
// onnxruntime_go and prints its version: `make deps` runs it to verify the
// fetched library.
package main

import (
	"fmt"
	"os"

	"github.com/dynoml/dyno/executor/ort"
)

func main() {
	path := ""
	if len(os.Args) > 1 {
		path = os.Args[1]
	}
	if err := ort.Init(path); err != nil {
		fmt.Fprintln(os.Stderr, "ortcheck:", err)
		os.Exit(1)
	}
	v, p := ort.Version()
	fmt.Printf("ONNX Runtime %s loaded from %s\n", v, p)
}
