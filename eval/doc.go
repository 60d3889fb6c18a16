// Package eval owns dyno's evaluation: the simulator that runs policies
// through scenarios against a per-request oracle (sim*.go, scenario*.go,
// trace*.go), and the offline estimators and reports that read trace logs.
//
// A scenario (a JSON file, see docs/simulator.md) names the model, the
// profiles and accuracy table the policies see, the truth the simulator
// draws from (the profiles times factors that may change at given request
// counts, a true accuracy table), a bandwidth trace and RTT, noise, the
// objective, the number of requests and a seed. The simulator reports, per
// policy, mean cost, cumulative regret against the oracle, the share of
// requests that met the SLO and the accuracy floor, bytes sent, the arms
// chosen, the recovery time after each abrupt change, and learning curves.
//
// It does not own the policies (bandit) or the cost model (costmodel), and
// it emulates nothing at run time: every figure it prints is simulated.
package eval
