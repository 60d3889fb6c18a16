// Package tracelog is the schema of dyno's trace log: one record per
// executed request (conditions, eligible arms, the chosen arm with its
// propensity and the full distribution where known, policy version, stage
// times, bytes, accuracy, ids and timestamps), written and read as JSON
// Lines. The controller exports its log in this form, the simulator writes
// it, and offline evaluation reads it.
//
// Reading streams: memory stays bounded by the longest line allowed, however
// large the file. A bad line is an error naming its line number, or, with
// SkipBad, is counted and skipped.
//
// # Caveats
//
// Reader.Record returns a pointer to a record the reader reuses: its slices
// are overwritten by the next call to Next. Copy what must outlive it.
package tracelog
