package eval

import (
	"errors"

	"github.com/dynoml/dyno/internal/bwtrace"
)

// Sentinel errors. Each is wrapped with the file and field; test with
// errors.Is.
var (
	// ErrInvalidScenario is wrapped by every scenario validation failure.
	ErrInvalidScenario = errors.New("eval: invalid scenario")
	// ErrInvalidTrace is wrapped by every bandwidth trace failure.
	ErrInvalidTrace = bwtrace.ErrInvalid
	// ErrInvalidOptions is wrapped by bad simulation options.
	ErrInvalidOptions = errors.New("eval: invalid options")
)
