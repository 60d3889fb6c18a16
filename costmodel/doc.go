// Package costmodel is DynO's analytic cost model: per-block latency
// profiles of a device class and of the cloud GPU, the arms (split, bits),
// the conditions an executor measures before each request, the objectives,
// and the prediction of every stage of every arm, from which the static DynO
// scheduler picks the best allowed arm.
//
// It predicts; it does not learn (that is the bandit) and does not time
// anything (that is the executor's profiler). Every input type decodes from
// JSON with unknown fields rejected and validates with an error that names
// the bad field.
package costmodel
