// Package store keeps all of the controller's durable state in one bbolt
// file, and is the only package that imports bbolt.
//
// It owns the layout (buckets.go), the schema version and its migrations
// (schema.go), and one typed file per stored thing: executors, model
// manifests and profiles, keys, bandit state, published policies, pins, the
// audit log of admin changes, the trace log with its retention, and the
// per-executor report windows used to drop resent reports. It does not
// interpret what it keeps: the controller validates, learns and decides;
// the store encodes, decodes and commits.
//
// Writes happen in transactions passed as callbacks (Store.Update,
// Store.View), so a caller groups as many records as it likes into one
// commit: the controller commits a group of report batches at a time and
// acknowledges them only after Update has returned.
//
// # Caveats
//
// Records returned by a Tx are decoded copies and stay valid after the
// transaction ends. Byte slices passed to Put methods are not retained
// after the transaction ends, but must not be modified while it runs.
//
// Open refuses, without writing anything, a file that is not a dyno store,
// a store of a newer schema, and a file that fails bbolt's consistency
// check. A file is locked by the process that has it open; a second Open of
// the same file fails after Options.LockTimeout with ErrLocked.
package store
