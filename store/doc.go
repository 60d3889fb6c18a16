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
// Open refuses, without writing anything, a file that is not a dyno store
// (ErrNotStore), a store of a newer schema (ErrSchemaTooNew), a damaged
// file (ErrCorrupt: truncated, a damaged meta page, a page that is not what
// its parent says, a bucket of the schema missing, or bbolt's consistency
// check failing), a store with a record that does not decode
// (ErrCorruptRecord), and an empty file unless Options.Create (ErrEmpty).
// The pages are walked with plain reads (verify.go) before bbolt maps the
// file, since bbolt trusts them: a truncated file faults with SIGBUS, a
// scrambled page panics. bbolt opens a file whose newer meta page is
// damaged at the older one, silently losing the last commit; Open refuses
// it unless Options.AllowMetaFallback. Opening a sound store of the current
// schema writes nothing. A file is locked by the process that has it open;
// a second Open of the same file fails after Options.LockTimeout with
// ErrLocked.
package store
