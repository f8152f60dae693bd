package ldp

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"
)

func TestPlan(t *testing.T) {
	cases := []struct {
		slots             int
		s                 Sampling
		perReport, perDay float64
		reports           int
		eps, day, pi      float64
	}{
		{48, Sampling{}, 0.5, 0, 48, 0.5, 24, 1},
		{48, Sampling{}, 0, 2.4, 48, 0.05, 2.4, 1},
		{48, Sampling{Stride: 4}, 0, 2.4, 12, 0.2, 2.4, 0.25},
		{50, Sampling{Stride: 4}, 0, 2.6, 13, 0.2, 2.6, 0.25}, // ceil(50/4) reports for offsets 0, 1
		{48, Sampling{Count: 6}, 0, 3, 6, 0.5, 3, 0.125},
		{48, Sampling{Count: 6}, 1, 0, 6, 1, 6, 0.125},
		{1, Sampling{Count: 1}, 1, 0, 1, 1, 1, 1},
	}
	for _, c := range cases {
		p, err := NewPlan(c.slots, c.s, c.perReport, c.perDay)
		if err != nil {
			t.Fatalf("%+v: %v", c, err)
		}
		if p.Reports != c.reports || math.Abs(p.Epsilon-c.eps) > 1e-12 || math.Abs(p.DayBudget-c.day) > 1e-12 || p.Inclusion != c.pi {
			t.Errorf("%d slots, %v: got %+v", c.slots, c.s, p)
		}
	}
}

func TestPlanErrors(t *testing.T) {
	cases := []struct {
		slots        int
		s            Sampling
		perRep, perD float64
		want         string
	}{
		{0, Sampling{}, 1, 0, "0 slots per day"},
		{48, Sampling{Stride: 2, Count: 3}, 1, 0, "both stride 2 and count 3"},
		{48, Sampling{Stride: 1}, 1, 0, "stride 1 must be between 2 and the 48"},
		{48, Sampling{Stride: 49}, 1, 0, "stride 49"},
		{48, Sampling{Count: -1}, 1, 0, "count -1"},
		{48, Sampling{Count: 49}, 1, 0, "count 49"},
		{48, Sampling{}, 1, 1, "exactly one of"},
		{48, Sampling{}, 0, 0, "exactly one of"},
		{48, Sampling{}, math.NaN(), 0, "must be finite"},
		{48, Sampling{}, 0, 1e-5, "would get epsilon"},
		{48, Sampling{}, 200, 0, "would get epsilon 200"},
	}
	for _, c := range cases {
		_, err := NewPlan(c.slots, c.s, c.perRep, c.perD)
		if !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("NewPlan(%d, %v, %v, %v) = %v, want %q", c.slots, c.s, c.perRep, c.perD, err, c.want)
		}
	}
}

// TestPlanChoose: chosen slots are distinct, ascending, as many as the
// plan says, and each slot is chosen with probability Inclusion (binomial
// z-test); Choose does not allocate with a big enough buffer.
func TestPlanChoose(t *testing.T) {
	plans := []Sampling{{}, {Stride: 3}, {Stride: 5}, {Count: 7}, {Count: 20}}
	const slots, meters = 20, 20000
	z := zFor(len(plans) * slots)
	rng := newRand(31)
	buf := make([]int, 0, slots)
	for _, s := range plans {
		p, err := NewPlan(slots, s, 1, 0)
		if err != nil {
			t.Fatal(err)
		}
		hits := make([]float64, slots)
		for range meters {
			got := p.Choose(rng, buf)
			if len(got) > p.Reports || (s.Stride == 0 && len(got) != p.Reports) || !slices.IsSorted(got) {
				t.Fatalf("%v: chose %v", s, got)
			}
			for i, v := range got {
				if i > 0 && got[i-1] == v {
					t.Fatalf("%v: slot %d twice", s, v)
				}
				hits[v]++
			}
		}
		pi := p.Inclusion
		sd := math.Sqrt(pi * (1 - pi) / meters)
		for v, h := range hits {
			if f := h / meters; math.Abs(f-pi) > z*sd+1e-12 {
				t.Errorf("%v: slot %d chosen with frequency %.4f, want %.4f", s, v, f, pi)
			}
		}
		if a := testing.AllocsPerRun(100, func() { p.Choose(rng, buf) }); a != 0 {
			t.Errorf("%v: Choose allocates %v times", s, a)
		}
	}
}

// TestAccountant: a day budget split into equal shares is spent exactly,
// one more report is refused with a typed error, a new day starts from
// zero and the totals add up across days.
func TestAccountant(t *testing.T) {
	for _, c := range []struct {
		limit   float64
		reports int
	}{{1, 48}, {2.4, 12}, {0.7, 7}, {10, 96}, {1e-3, 3}} {
		a, err := NewAccountant(3, c.limit)
		if err != nil {
			t.Fatal(err)
		}
		share := c.limit / float64(c.reports)
		for day := 0; day < 2; day++ {
			for i := 0; i < c.reports; i++ {
				if err := a.Charge(1, share); err != nil {
					t.Fatalf("limit %v, report %d of %d on day %d: %v", c.limit, i+1, c.reports, day, err)
				}
			}
			if a.Reports(1) != int64(c.reports) || math.Abs(a.Spent(1)-c.limit) > 1e-9*c.limit || a.MaxSpent() != a.Spent(1) || a.Spent(0) != 0 {
				t.Errorf("limit %v day %d: spent %v in %d reports", c.limit, day, a.Spent(1), a.Reports(1))
			}
			err := a.Charge(1, share)
			var be *BudgetError
			if !errors.Is(err, ErrBudgetExceeded) || !errors.As(err, &be) || be.Meter != 1 || be.Limit != c.limit {
				t.Errorf("limit %v: over-budget report gave %v", c.limit, err)
			}
			if a.Reports(1) != int64(c.reports) {
				t.Errorf("a refused report was counted")
			}
			a.EndDay()
		}
		if a.Day() != 2 || math.Abs(a.Total(1)-2*c.limit) > 1e-9*c.limit || a.Spent(1) != 0 {
			t.Errorf("limit %v: after two days day %d total %v spent %v", c.limit, a.Day(), a.Total(1), a.Spent(1))
		}
	}
	a, _ := NewAccountant(2, math.Inf(1))
	for range 1000 {
		if err := a.Charge(0, 5); err != nil {
			t.Fatal(err)
		}
	}
	for _, bad := range []struct {
		meter int
		eps   float64
	}{{-1, 1}, {2, 1}, {0, 0}, {0, math.NaN()}, {0, math.Inf(1)}} {
		if err := a.Charge(bad.meter, bad.eps); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("Charge(%d, %v) = %v", bad.meter, bad.eps, err)
		}
	}
	if _, err := NewAccountant(0, 1); err == nil {
		t.Error("accountant without meters")
	}
	if _, err := NewAccountant(1, 0); err == nil {
		t.Error("accountant with zero budget")
	}
}

// TestSamplingEstimator: with a plan, the Horvitz-Thompson slot estimate
// (reports of the slot / pi) is unbiased and has variance
// sum_i V_i/pi + x_i^2 (1/pi - 1); and at a small day budget, sampling
// beats reporting every slot, as the package documentation says.
func TestSamplingEstimator(t *testing.T) {
	const slots, meters, rounds, maxKW = 12, 50, 4000, 4.0
	xs := population(meters, maxKW)
	samplings := []Sampling{{}, {Stride: 3}, {Count: 2}}
	z := zFor(len(samplings) * 2)
	rng := newRand(41)
	buf := make([]int, 0, slots)
	theory := map[string]float64{}
	for _, s := range samplings {
		p, err := NewPlan(slots, s, 0, 1.2) // day budget 1.2
		if err != nil {
			t.Fatal(err)
		}
		m := mustNew(t, Config{Mechanism: Hybrid, Epsilon: p.Epsilon, MaxKW: maxKW})
		truth, v := 0.0, 0.0
		for _, x := range xs {
			xc := m.Clip(x)
			truth += xc
			v += m.ReadingVariance(x)/p.Inclusion + xc*xc*(1/p.Inclusion-1)
		}
		theory[s.String()] = v
		const slot = 4 // the estimate of one slot (all slots have the same readings here)
		est := make([]float64, rounds)
		a := m.NewAggregator()
		for r := range est {
			a.Reset()
			for _, x := range xs {
				for _, t := range p.Choose(rng, buf) {
					if t == slot {
						_ = a.Add(m.Perturb(x, rng))
					}
				}
			}
			est[r] = a.Sum().Value / p.Inclusion
		}
		checkMoments(t, fmt.Sprintf("%v", s), est, truth, v, z)
	}
	if !(theory["1 in 3 slots"] < theory["every slot"] && theory["2 random slots"] < theory["1 in 3 slots"]) {
		t.Errorf("at day budget 1.2 over 12 slots sampling should lower the variance: %v", theory)
	}
}
