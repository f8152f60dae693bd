package ldp

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"

	"github.com/gridveil/gridveil/charging"
)

// MaxMetersPerBus bounds BaselineOptions.MetersPerBus.
const MaxMetersPerBus = 1 << 20

// BaselineOptions configures EstimateBaseline.
type BaselineOptions struct {
	Mechanism Name // required
	Levels    int  // GRR and OUE levels (0: the default)
	// Epsilon is each report's privacy loss; DayEpsilon is instead a
	// meter's budget for the whole horizon, split evenly over its reports.
	// Give exactly one.
	Epsilon, DayEpsilon float64
	// MetersPerBus is the number of household meters whose readings add up
	// to each loaded bus's baseline (>= 1).
	MetersPerBus int
	// MaxKW is every meter's clip bound, kW. 0 derives it per bus from
	// public data: 1.5 * (the bus's peak baseline) / MetersPerBus, the
	// largest reading the split below can produce, so nothing is clipped.
	MaxKW float64
	// Sampling decides which slots each meter reports (zero: every slot).
	Sampling Sampling
}

// BaselineReport describes one EstimateBaseline run. Errors compare the
// estimate with the true baseline; "predicted" figures come from the
// mechanism's exact variance given the true readings.
type BaselineReport struct {
	Mechanism        Name     `json:"mechanism"`
	Levels           int      `json:"levels"`             // GRR and OUE levels; 0 otherwise
	EpsilonPerReport float64  `json:"epsilon_per_report"` // each report's privacy loss
	EpsilonPerDay    float64  `json:"epsilon_per_day"`    // the most any meter spent over the horizon (sequential composition), from the Accountant
	ReportsPerMeter  int      `json:"reports_per_meter"`  // the most reports any meter sent
	Sampling         Sampling `json:"sampling"`
	Inclusion        float64  `json:"inclusion"` // probability that a meter reports a given slot
	MetersPerBus     int      `json:"meters_per_bus"`
	Meters           int      `json:"meters"`            // meters modelled: loaded buses times MetersPerBus
	Reports          int64    `json:"reports"`           // reports sent
	ClippedReadings  int64    `json:"clipped_readings"`  // readings outside [0, clip] before perturbation
	ClippedEstimates int      `json:"clipped_estimates"` // bus-slot estimates that were negative and set to 0

	ClipKW   [][]float64   `json:"clip_kw"`  // [feeder][bus] the clip bound; 0 for a bus without load (no meters)
	Variance [][][]float64 `json:"variance"` // [feeder][bus][slot] variance of the bus estimate before clipping at 0, kW^2

	RMSE               float64 `json:"rmse"`                 // kW, over loaded bus-slots, estimated minus true BaseP
	PredictedRMSE      float64 `json:"predicted_rmse"`       // kW, sqrt of the mean Variance over the same (an upper bound after clipping at 0)
	MaxAbsError        float64 `json:"max_abs_error"`        // kW, largest bus-slot error
	TotalRMSE          float64 `json:"total_rmse"`           // kW, over slots, of the region's total baseline D(t)
	PredictedTotalRMSE float64 `json:"predicted_total_rmse"` // kW
	MeanClipBias       float64 `json:"mean_clip_bias"`       // kW, predicted mean upward bias per loaded bus-slot from clipping negative estimates (ClipBias)

	MinVoltage          float64 `json:"min_voltage"`           // pu, lowest baseline-only voltage with the true baseline
	MinVoltageEstimated float64 `json:"min_voltage_estimated"` // pu, the same with the estimated baseline
}

// EstimateBaseline simulates C5 on a charging problem: every loaded bus's
// active baseline BaseP[b][t] is the sum of MetersPerBus household meters;
// each meter perturbs its reading of every slot its Plan picks with the
// mechanism; the SO forms the unbiased per-bus estimate from the reports.
// It returns a copy of p whose baselines are the SO's estimates, and a
// report. p is not modified.
//
// The split: meter i of a bus reads u_i/n of the bus's load in every slot,
// with u_i ~ U[0.5, 1.5] for the first half of the meters, u_(n-1-i) =
// 2 - u_i for the second and u = 1 for the middle one when n is odd: the
// shares sum to exactly 1 and no meter reads more than 1.5/n of the bus. A
// bus whose baseline is never positive has no households and keeps its
// baseline.
//
// The estimate: the Aggregator's unbiased sum of a slot's reports divided
// by the plan's inclusion probability pi (Horvitz-Thompson), unbiased for
// the sum of the clipped readings. A negative estimate is set to 0 (a bus
// does not generate): that can only lower the error but biases the
// estimate upwards, by E[max(0, -S^)] = ClipBias(S, Var) for a
// normal estimate S^ of S; the report predicts it.
//
// BaseQ follows the active estimate at the bus's own power factor:
// Q^ = Q + k_b (P^ - P), with k_b the least-squares slope of BaseQ against
// BaseP over the horizon. For baselines built by grid.Baseline, reactive
// load tan(phi) * P minus a constant capacitor, k_b is exactly tan(phi) and
// the capacitor stays as it was. A bus whose BaseP does not vary keeps its
// BaseQ (k_b = 0).
//
// The estimate can fail charging.Problem.Validate when noise pushes the
// estimated baseline below vmin; the report's MinVoltageEstimated shows it.
// Draws from rng in a fixed order: per bus, the shares, then meter by meter
// its slots and its reports.
func EstimateBaseline(p *charging.Problem, opt BaselineOptions, rng *rand.Rand) (*charging.Problem, *BaselineReport, error) {
	if p == nil || rng == nil {
		return nil, nil, fmt.Errorf("%w: EstimateBaseline needs a problem and a random source", ErrInvalidConfig)
	}
	if err := p.Validate(); err != nil {
		return nil, nil, fmt.Errorf("ldp baseline: %w", err)
	}
	n := opt.MetersPerBus
	if n < 1 || n > MaxMetersPerBus {
		return nil, nil, fmt.Errorf("%w: %d meters per bus; give 1 to %d", ErrInvalidConfig, n, MaxMetersPerBus)
	}
	if !(opt.MaxKW >= 0) || math.IsInf(opt.MaxKW, 0) {
		return nil, nil, fmt.Errorf("%w: clip bound max_kw %v must be >= 0 (0 derives it per bus)", ErrInvalidConfig, opt.MaxKW)
	}
	plan, err := NewPlan(p.Slots, opt.Sampling, opt.Epsilon, opt.DayEpsilon)
	if err != nil {
		return nil, nil, err
	}
	// One mechanism on readings normalised by the bus's clip bound.
	mech, err := New(Config{Mechanism: opt.Mechanism, Epsilon: plan.Epsilon, MaxKW: 1, Levels: opt.Levels})
	if err != nil {
		return nil, nil, err
	}
	acct, err := NewAccountant(n, plan.DayBudget)
	if err != nil {
		return nil, nil, err
	}
	T := p.Slots
	out := cloneProblem(p)
	rep := &BaselineReport{
		Mechanism: mech.Name(), Levels: mech.Levels(), EpsilonPerReport: plan.Epsilon,
		Sampling: plan.Sampling, Inclusion: plan.Inclusion, MetersPerBus: n,
		ClipKW: make([][]float64, len(p.Feeders)), Variance: make([][][]float64, len(p.Feeders)),
	}
	aggs := make([]*Aggregator, T)
	for t := range aggs {
		aggs[t] = mech.NewAggregator()
	}
	shares := make([]float64, n)
	slotBuf := make([]int, 0, T)
	variance := make([]float64, T) // per slot, normalised units
	truth := make([]float64, T)    // per slot, sum of clipped readings, kW
	total := make([]float64, T)    // estimated minus true region total
	totalVar := make([]float64, T)
	var sq, sqPred, bias float64
	busSlots := 0
	invPi := 1 / plan.Inclusion

	for fi := range p.Feeders {
		f := &p.Feeders[fi]
		of := &out.Feeders[fi]
		rep.ClipKW[fi] = make([]float64, len(f.Buses))
		rep.Variance[fi] = make([][]float64, len(f.Buses))
		for b := range f.Buses {
			rep.Variance[fi][b] = make([]float64, T)
			row := f.BaseP[b]
			peak := slices.Max(row)
			if !(peak > 0) {
				continue
			}
			clip := opt.MaxKW
			if clip == 0 {
				clip = 1.5 * peak / float64(n)
			}
			rep.ClipKW[fi][b] = clip
			rep.Meters += n
			drawShares(shares, rng)
			for t := range aggs {
				aggs[t].Reset()
				variance[t], truth[t] = 0, 0
			}
			acct.EndDay()
			for i, w := range shares {
				// What the meter reads in every slot, and the exact variance
				// its report (if any) adds to the slot's HT estimate.
				for t, load := range row {
					x := w * load / clip // normalised reading
					if x < 0 || x > 1+1e-12 {
						rep.ClippedReadings++
					}
					xc := mech.Clip(x)
					truth[t] += xc * clip
					variance[t] += mech.ReadingVariance(xc)*invPi + xc*xc*(invPi-1)
				}
				for _, t := range plan.Choose(rng, slotBuf) {
					if err := acct.Charge(i, plan.Epsilon); err != nil {
						return nil, nil, fmt.Errorf("ldp baseline: feeder %q bus %q: %w", f.Name, f.Buses[b].Name, err)
					}
					if err := aggs[t].Add(mech.Perturb(w*row[t]/clip, rng)); err != nil {
						return nil, nil, fmt.Errorf("ldp baseline: %w", err) // cannot happen: Perturb's reports are valid
					}
					rep.Reports++
				}
			}
			rep.EpsilonPerDay = math.Max(rep.EpsilonPerDay, acct.MaxSpent())
			for i := 0; i < n; i++ {
				rep.ReportsPerMeter = max(rep.ReportsPerMeter, int(acct.Reports(i)))
			}
			kq := reactiveSlope(row, f.BaseQ[b])
			for t := range aggs {
				est := aggs[t].Sum().Value * invPi * clip
				v := variance[t] * clip * clip
				rep.Variance[fi][b][t] = v
				sqPred += v
				bias += ClipBias(truth[t], v)
				if est < 0 {
					est = 0
					rep.ClippedEstimates++
				}
				of.BaseP[b][t] = est
				of.BaseQ[b][t] = f.BaseQ[b][t] + kq*(est-row[t])
				e := est - row[t]
				sq += e * e
				rep.MaxAbsError = math.Max(rep.MaxAbsError, math.Abs(e))
				total[t] += e
				totalVar[t] += v
				busSlots++
			}
		}
	}
	if busSlots > 0 {
		rep.RMSE = math.Sqrt(sq / float64(busSlots))
		rep.PredictedRMSE = math.Sqrt(sqPred / float64(busSlots))
		rep.MeanClipBias = bias / float64(busSlots)
	}
	var tsq, tvar float64
	for t := range total {
		tsq += total[t] * total[t]
		tvar += totalVar[t]
	}
	rep.TotalRMSE = math.Sqrt(tsq / float64(T))
	rep.PredictedTotalRMSE = math.Sqrt(tvar / float64(T))
	rep.MinVoltage = minBaselineVoltage(p)
	rep.MinVoltageEstimated = minBaselineVoltage(out)
	return out, rep, nil
}

// drawShares fills s with the documented split: antithetic pairs around
// 1/n, each share in [0.5/n, 1.5/n], summing to 1.
func drawShares(s []float64, rng *rand.Rand) {
	n := len(s)
	for i := 0; i < n/2; i++ {
		u := 0.5 + rng.Float64()
		s[i], s[n-1-i] = u/float64(n), (2-u)/float64(n)
	}
	if n%2 == 1 {
		s[n/2] = 1 / float64(n)
	}
}

// reactiveSlope is the least-squares slope of q against p (0 if p is
// constant).
func reactiveSlope(p, q []float64) float64 {
	var mp, mq float64
	for t := range p {
		mp += p[t]
		mq += q[t]
	}
	mp /= float64(len(p))
	mq /= float64(len(p))
	var spp, spq float64
	for t := range p {
		spp += (p[t] - mp) * (p[t] - mp)
		spq += (p[t] - mp) * (q[t] - mq)
	}
	if !(spp > 1e-12*(mp*mp+1)*float64(len(p))) {
		return 0
	}
	return spq / spp
}

// ClipBias returns E[max(0, X)] - mu for X ~ N(mu, variance): the upward
// bias that setting a negative estimate to 0 adds to an unbiased, normal
// estimate of mu >= 0. It is sigma phi(mu/sigma) - mu Phi(-mu/sigma), at most
// sigma/sqrt(2 pi) (at mu = 0) and negligible once mu exceeds 3 sigma.
func ClipBias(mu, variance float64) float64 {
	if !(variance > 0) {
		return math.Max(0, -mu)
	}
	s := math.Sqrt(variance)
	z := mu / s
	return s*math.Exp(-z*z/2)/math.Sqrt(2*math.Pi) - mu*0.5*math.Erfc(z/math.Sqrt2)
}

func cloneProblem(p *charging.Problem) *charging.Problem {
	out := *p
	out.EVs = slices.Clone(p.EVs)
	out.Feeders = make([]charging.Feeder, len(p.Feeders))
	for fi, f := range p.Feeders {
		f.Buses = slices.Clone(f.Buses)
		f.BaseP = cloneRows(f.BaseP)
		f.BaseQ = cloneRows(f.BaseQ)
		out.Feeders[fi] = f
	}
	return &out
}

func cloneRows(rows [][]float64) [][]float64 {
	out := make([][]float64, len(rows))
	for i, r := range rows {
		out[i] = slices.Clone(r)
	}
	return out
}

// minBaselineVoltage is the lowest baseline-only voltage of the region.
func minBaselineVoltage(p *charging.Problem) float64 {
	v := math.Inf(1)
	for fi := range p.Feeders {
		f := &p.Feeders[fi]
		n := len(f.Buses)
		pt, qt, v2, scratch := make([]float64, n), make([]float64, n), make([]float64, n), make([]float64, n)
		for t := 0; t < p.Slots; t++ {
			for b := 0; b < n; b++ {
				pt[b], qt[b] = f.BaseP[b][t], f.BaseQ[b][t]
			}
			f.VoltageSquared(pt, qt, v2, scratch)
			for b := 1; b < n; b++ {
				v = math.Min(v, math.Sqrt(math.Max(v2[b], 0)))
			}
		}
	}
	return v
}

// Comparison scores coordination run on an estimated baseline against the
// optimum on the true one. Both schedules are evaluated on the true grid:
// the true baseline plus the EVs' charging.
type Comparison struct {
	Objective     float64 `json:"objective"`       // 1/2 sum_t A(t)^2 of the optimum, kW^2
	ObjectiveLDP  float64 `json:"objective_ldp"`   // the same for the schedules computed on the estimate
	RelGap        float64 `json:"rel_gap"`         // (ObjectiveLDP - Objective) / Objective
	Peak          float64 `json:"peak"`            // largest aggregate A(t), kW
	PeakLDP       float64 `json:"peak_ldp"`        // the same under the LDP-based schedules
	AggregateRMSE float64 `json:"aggregate_rmse"`  // kW, over slots, between the two aggregates
	MaxAggDiff    float64 `json:"max_agg_diff"`    // kW, largest slot difference between them
	MinVoltage    float64 `json:"min_voltage"`     // pu, lowest voltage under the optimum
	MinVoltageLDP float64 `json:"min_voltage_ldp"` // pu, lowest voltage under the LDP-based schedules
	Violation     float64 `json:"violation"`       // pu, largest vmin - V under the LDP-based schedules (<= 0: none)
	Violations    int     `json:"violations"`      // bus-slots below vmin by more than VoltageTolerance under them
}

// VoltageTolerance is the violation Compare tolerates before it counts a
// bus-slot, the charging solver's default VoltTol.
const VoltageTolerance = 1e-6

// ErrMismatch is wrapped by Compare's errors for solutions that do not fit
// the problem.
var ErrMismatch = errors.New("solution does not match the problem")

// Compare evaluates the EV schedules of opt (solved on the true problem)
// and ldp (solved on EstimateBaseline's estimate of it) on the true
// problem. Both solutions must carry schedules (charging.Solution.Schedules).
func Compare(truth *charging.Problem, opt, ldp *charging.Solution) (*Comparison, error) {
	if truth == nil || opt == nil || ldp == nil {
		return nil, fmt.Errorf("%w: Compare needs the true problem and two solutions", ErrMismatch)
	}
	c := &Comparison{}
	var err error
	var aggOpt, aggLDP []float64
	if aggOpt, c.MinVoltage, _, _, err = evaluate(truth, opt, "optimal"); err != nil {
		return nil, err
	}
	if aggLDP, c.MinVoltageLDP, c.Violation, c.Violations, err = evaluate(truth, ldp, "LDP"); err != nil {
		return nil, err
	}
	var sq float64
	for t := range aggOpt {
		c.Objective += aggOpt[t] * aggOpt[t] / 2
		c.ObjectiveLDP += aggLDP[t] * aggLDP[t] / 2
		c.Peak = math.Max(c.Peak, aggOpt[t])
		c.PeakLDP = math.Max(c.PeakLDP, aggLDP[t])
		d := aggLDP[t] - aggOpt[t]
		sq += d * d
		c.MaxAggDiff = math.Max(c.MaxAggDiff, math.Abs(d))
	}
	c.AggregateRMSE = math.Sqrt(sq / float64(len(aggOpt)))
	if c.Objective > 0 {
		c.RelGap = (c.ObjectiveLDP - c.Objective) / c.Objective
	}
	return c, nil
}

// evaluate returns the aggregate load and voltage facts of sol's schedules
// on p's true baseline.
func evaluate(p *charging.Problem, sol *charging.Solution, what string) (agg []float64, minV, worst float64, count int, err error) {
	if len(sol.Schedules) != len(p.EVs) {
		return nil, 0, 0, 0, fmt.Errorf("%w: the %s solution has %d schedules for %d EVs; solve with schedules kept", ErrMismatch, what, len(sol.Schedules), len(p.EVs))
	}
	T := p.Slots
	load := make([][][]float64, len(p.Feeders)) // [feeder][bus][slot] EV load
	for fi := range p.Feeders {
		load[fi] = make([][]float64, len(p.Feeders[fi].Buses))
		for b := range load[fi] {
			load[fi][b] = make([]float64, T)
		}
	}
	agg = p.Baseline()
	for i, x := range sol.Schedules {
		ev := &p.EVs[i]
		if len(x) != T {
			return nil, 0, 0, 0, fmt.Errorf("%w: the %s solution's schedule of EV %q has %d slots, the problem %d", ErrMismatch, what, ev.ID, len(x), T)
		}
		for t, v := range x {
			if math.IsNaN(v) || math.IsInf(v, 0) {
				return nil, 0, 0, 0, fmt.Errorf("%w: the %s solution's schedule of EV %q is not finite in slot %d", ErrMismatch, what, ev.ID, t)
			}
			load[ev.Feeder][ev.Bus][t] += v
			agg[t] += v
		}
	}
	minV, worst = math.Inf(1), math.Inf(-1)
	for fi := range p.Feeders {
		f := &p.Feeders[fi]
		n := len(f.Buses)
		pt, qt, v2, scratch := make([]float64, n), make([]float64, n), make([]float64, n), make([]float64, n)
		for t := 0; t < T; t++ {
			for b := 0; b < n; b++ {
				pt[b], qt[b] = f.BaseP[b][t]+load[fi][b][t], f.BaseQ[b][t]
			}
			f.VoltageSquared(pt, qt, v2, scratch)
			for b := 1; b < n; b++ {
				v := math.Sqrt(math.Max(v2[b], 0))
				minV = math.Min(minV, v)
				worst = math.Max(worst, p.VMin-v)
				if v < p.VMin-VoltageTolerance {
					count++
				}
			}
		}
	}
	return agg, minV, worst, count, nil
}
