package controller

import (
	"context"
	"errors"
	"fmt"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/dynoml/dyno/bandit"
	"github.com/dynoml/dyno/costmodel"
	"github.com/dynoml/dyno/model"
)

// Sentinel errors of the controller, mapped to gRPC codes by toStatus.
var (
	// ErrInvalid: a request is malformed; wrapped with the field.
	ErrInvalid = errors.New("controller: invalid argument")
	// ErrNotFound: a key, model or executor does not exist.
	ErrNotFound = errors.New("controller: not found")
	// ErrStopping: the controller is shutting down or its store failed.
	ErrStopping = errors.New("controller: unavailable")
	// ErrRateLimited: an executor reports faster than its limit.
	ErrRateLimited = errors.New("controller: rate limited")
	// ErrPermission: the caller may not act on this executor (it belongs
	// to another identity, or the token is limited to other ids).
	ErrPermission = errors.New("controller: permission denied")
	// ErrQuota: the caller owns as many executors as it may.
	ErrQuota = errors.New("controller: quota exceeded")
	// ErrConflict: the request conflicts with the state (a stream already
	// bound to another executor).
	ErrConflict = errors.New("controller: failed precondition")
)

// fieldError names the bad field of a request.
type fieldError struct {
	field string
	msg   string
}

func (e *fieldError) Error() string { return e.field + ": " + e.msg }
func (e *fieldError) Unwrap() error { return ErrInvalid }

func badField(field, format string, args ...any) error {
	return &fieldError{field: field, msg: fmt.Sprintf(format, args...)}
}

// toStatus maps an error to the gRPC status the client sees; it is the one
// place where the controller's errors meet gRPC codes.
func toStatus(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	code := codes.Internal
	switch {
	case errors.Is(err, ErrInvalid), errors.Is(err, costmodel.ErrInvalid), errors.Is(err, bandit.ErrInvalid),
		errors.Is(err, bandit.ErrUnknownArm), errors.Is(err, bandit.ErrUnknownPolicy), errors.Is(err, model.ErrInvalidManifest):
		code = codes.InvalidArgument
	case errors.Is(err, ErrNotFound):
		code = codes.NotFound
	case errors.Is(err, ErrStopping):
		code = codes.Unavailable
	case errors.Is(err, ErrPermission):
		code = codes.PermissionDenied
	case errors.Is(err, ErrRateLimited), errors.Is(err, ErrQuota):
		code = codes.ResourceExhausted
	case errors.Is(err, ErrConflict), errors.Is(err, bandit.ErrNoEligibleArm), errors.Is(err, costmodel.ErrNoEligibleArm):
		code = codes.FailedPrecondition
	case errors.Is(err, context.Canceled):
		code = codes.Canceled
	case errors.Is(err, context.DeadlineExceeded):
		code = codes.DeadlineExceeded
	}
	return status.Error(code, err.Error())
}
