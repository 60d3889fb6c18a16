// Package bandit owns dyno's policies: the contextual bandit that picks an arm
// (split, bits) for every request and learns from what the executors measure,
// and the baselines it is judged against. Every policy chooses with an
// explicit probability (the propensity that offline evaluation needs) and
// returns the full distribution it drew from; every policy's state
// serialises to versioned bytes and back exactly, so the controller can keep
// it in its store and an executor can choose locally from a published
// snapshot.
//
// The policies, one file each:
//
//   - Dyno (dyno.go, tuned by dynoconfig.go): per-stage Bayesian linear
//     regression on the cost model's predictions (blr.go: rank-one updates
//     on gonum matrices) with directional forgetting and change detection,
//     a residual per split, accuracy learned per arm as a constraint, and
//     posterior-gap exploration with exact propensities.
//   - Static (static.go): DynO's static scheduler, profiles plus measured
//     conditions.
//   - DeviceOnly (device.go) and CloudOnly (cloud.go).
//   - Neurosurgeon (neurosurgeon.go): per-layer-type latency regression,
//     split only.
//   - ANS (ans.go): muLinUCB of Zhang et al. (WWW 2021), one arm per split.
//   - EGreedy (egreedy.go): epsilon-greedy with a value per arm.
//
// It does not own the cost model (costmodel), the trace log or the store
// (store), and it does no I/O: nothing here takes a context.Context.
//
// # Caveats
//
// A policy is not safe for concurrent use: the owner (the controller's
// learner, an executor's chooser, the simulator) serialises calls. Choose
// writes into the caller's Decision and reuses its Probs slice; Learn does
// not retain the Report.
package bandit
