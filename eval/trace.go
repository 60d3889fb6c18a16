package eval

import "github.com/dynoml/dyno/internal/bwtrace"

// Trace is a bandwidth trace (see package bwtrace).
type Trace = bwtrace.Trace

// ReadTrace parses a bandwidth trace; errors wrap ErrInvalidTrace.
var ReadTrace = bwtrace.ReadTrace

// LoadTrace reads a bandwidth trace file; errors wrap ErrInvalidTrace.
var LoadTrace = bwtrace.LoadTrace
