package eval

import (
	"encoding/json"
	"math"
)

// JSON has no NaN or infinity: every float the reports carry goes out as a
// number when it is finite and as null otherwise, and the report's reason
// fields say why it is missing.

// num is v, or nil (null) when v is not finite.
func num(v float64) *float64 {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return nil
	}
	return &v
}

// MarshalJSON writes non-finite figures as null.
func (e Estimate) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		Estimator Estimator `json:"estimator"`
		Value     *float64  `json:"value"`
		SE        *float64  `json:"se"`
		Lo        *float64  `json:"lo"`
		Hi        *float64  `json:"hi"`
		Floored   bool      `json:"floored,omitempty"`
		BootLo    *float64  `json:"boot_lo"`
		BootHi    *float64  `json:"boot_hi"`
		N         int64     `json:"n"`
		Verdict   Verdict   `json:"verdict"`
		Reason    string    `json:"reason,omitempty"`
	}{e.Estimator, num(e.Value), num(e.SE), num(e.Lo), num(e.Hi), e.Floored, num(e.BootLo), num(e.BootHi), e.N, e.Verdict, e.Reason})
}

// MarshalJSON writes non-finite figures as null, with support_reason when
// the support figures are missing.
func (d Diagnostics) MarshalJSON() ([]byte, error) {
	var reason string
	if d.WithDistribution == 0 {
		reason = "no record carries the logger's distribution (probs), so the mass on arms it could not choose is unknown"
	}
	return json.Marshal(struct {
		Samples            int64    `json:"samples"`
		ESS                *float64 `json:"ess"`
		ExpectedESS        *float64 `json:"expected_ess"`
		MaxWeight          *float64 `json:"max_weight"`
		MeanWeight         *float64 `json:"mean_weight"`
		MeanWeightSE       *float64 `json:"mean_weight_se"`
		ExpectedMeanWeight *float64 `json:"expected_mean_weight"`
		UnsupportedMass    *float64 `json:"unsupported_mass"`
		WithDistribution   int64    `json:"with_distribution"`
		ZeroSupportMass    *float64 `json:"zero_support_mass"`
		ZeroSupportShare   *float64 `json:"zero_support_share"`
		LowSupportMass     *float64 `json:"low_support_mass"`
		RareMass           *float64 `json:"rare_mass"`
		RareCostShare      *float64 `json:"rare_cost_share"`
		MinPropensity      *float64 `json:"min_propensity"`
		SupportReason      string   `json:"support_reason,omitempty"`
	}{d.Samples, num(d.ESS), num(d.ExpectedESS), num(d.MaxWeight), num(d.MeanWeight), num(d.MeanWeightSE), num(d.ExpectedMeanWeight),
		num(d.UnsupportedMass), d.WithDistribution, num(d.ZeroSupportMass), num(d.ZeroSupportShare), num(d.LowSupportMass), num(d.RareMass), num(d.RareCostShare), num(d.MinPropensity), reason})
}

// UnmarshalJSON reads what MarshalJSON writes; null reads as NaN.
func (e *Estimate) UnmarshalJSON(b []byte) error {
	var v struct {
		Estimator Estimator `json:"estimator"`
		Value     *float64  `json:"value"`
		SE        *float64  `json:"se"`
		Lo        *float64  `json:"lo"`
		Hi        *float64  `json:"hi"`
		Floored   bool      `json:"floored"`
		BootLo    *float64  `json:"boot_lo"`
		BootHi    *float64  `json:"boot_hi"`
		N         int64     `json:"n"`
		Verdict   Verdict   `json:"verdict"`
		Reason    string    `json:"reason"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	*e = Estimate{Estimator: v.Estimator, Value: orNaN(v.Value), SE: orNaN(v.SE), Lo: orNaN(v.Lo), Hi: orNaN(v.Hi), Floored: v.Floored,
		BootLo: orNaN(v.BootLo), BootHi: orNaN(v.BootHi), N: v.N, Verdict: v.Verdict, Reason: v.Reason}
	return nil
}

func orNaN(p *float64) float64 {
	if p == nil {
		return math.NaN()
	}
	return *p
}
