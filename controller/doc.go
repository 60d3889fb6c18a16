// Package controller is dyno's controller: the gRPC services executors and
// operators call (api.Executor, api.Admin, plus health and reflection), the
// learning loop that turns reports into published policies, the bearer
// token auth and TLS of its listener, and the InfluxDB sink of learning
// curves. Only this package imports the InfluxDB client.
//
// The path of a report:
//
//	Report stream -> validate (validate.go) -> committer (committer.go):
//	  dedup, append to the trace log, one bbolt commit per group of
//	  batches, then the acks -> learner of the key (learner.go): bandit
//	  Learn in trace order, publish every N reports or T ms: checkpoint
//	  (state + policy) through the committer -> hub (hub.go): every
//	  watcher of the key gets the latest version.
//
// A report is acknowledged once its trace is committed; its effect on the
// bandit is durable from then on because a restart replays the trace log
// above the last checkpoint of each key (Server.restore in server.go).
// Learning runs behind the acknowledgements: a learner that falls far
// behind reads the trace log instead of its inbox (catch-up).
//
// Goroutines: the committer, one learner per key and the InfluxDB sink are
// owned by the Server and waited for by Stop. Each stream's handler owns an
// ack sender (Report) or an update sender (WatchPolicies) and waits for it;
// it also reads its client in a goroutine that ends with the stream, so
// that it can leave at once when the controller shuts down.
//
// An executor id belongs to the identity that registered it first (the
// token's name, or the client certificate's subject under mutual TLS;
// auth.go): only that identity registers, reports and watches as it, within
// the token's id patterns and executor quota.
//
// It does not choose arms for requests (executors do, locally, with the
// bandit package) and does not decide how a policy learns (bandit does).
package controller
