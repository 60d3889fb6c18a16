package eval

import "testing"

func TestRecovery(t *testing.T) {
	oracle := make([]float64, 1000)
	for i := range oracle {
		oracle[i] = 100
	}
	cost := func(back int) []float64 {
		c := make([]float64, 1000)
		for i := range c {
			c[i] = 100
			if i >= 200 && i < 200+back {
				c[i] = 300
			}
		}
		return c
	}
	cases := []struct {
		name  string
		cost  []float64
		at    int
		end   int
		want  int
		check string
	}{
		{"never left", cost(0), 200, 1000, 0, ""},
		{"back after 50", cost(50), 200, 1000, 48, "(within 5% once a window holds at most 2 of the 50 bad requests)"},
		{"never back before the end", cost(800), 200, 1000, -1, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := recovery(tc.cost, oracle, tc.at, tc.end, 100, 0.05); got != tc.want {
				t.Fatalf("recovery = %d, want %d %s", got, tc.want, tc.check)
			}
		})
	}
}

func f64(v float64) *float64 { return &v }

func TestFactorsAt(t *testing.T) {
	s := &Scenario{Truth: Truth{
		DeviceSlowdown: 1.5,
		Changes:        []Change{{At: 10, DeviceSlowdown: f64(3)}, {At: 20, LinkEfficiency: f64(0.5)}},
		Waves:          []Wave{{Factor: FactorCloudQueueMs, Start: 30, Length: 10, Peak: 40}, {Factor: FactorCloudSlowdown, Start: 30, Length: 10, Peak: 5}},
	}}
	cases := []struct {
		i    int
		want factors
	}{
		{0, factors{device: 1.5, cloud: 1, link: 1}},
		{10, factors{device: 3, cloud: 1, link: 1}},
		{25, factors{device: 3, cloud: 1, link: 0.5}},
		{35, factors{device: 3, cloud: 5, link: 0.5, queueMs: 40}}, // the crest
		{40, factors{device: 3, cloud: 1, link: 0.5}},
	}
	for _, c := range cases {
		got := s.factorsAt(c.i)
		if simAbs(got.device-c.want.device) > 1e-9 || simAbs(got.cloud-c.want.cloud) > 1e-9 || simAbs(got.link-c.want.link) > 1e-9 || simAbs(got.queueMs-c.want.queueMs) > 1e-9 {
			t.Errorf("factorsAt(%d) = %+v, want %+v", c.i, got, c.want)
		}
	}
}

func simAbs(x float64) float64 {
	if x < 0 {
		return -x
	}
	return x
}
