// Package api is the gRPC and protobuf contract between dyno's controller,
// its executors and its operators: dyno.proto and the Go code generated from
// it (dyno.pb.go, dyno_grpc.pb.go), which is committed and regenerated with
// `make proto`. `make test` fails when the committed code is stale.
//
// Beside the generated code it holds one helper, Dial, which executors and
// dynoctl use to reach a controller with TLS and a bearer token. It holds no
// other logic: the controller and the executors convert these messages to
// their own types at their gRPC adapters.
package api
