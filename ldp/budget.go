package ldp

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
)

// Sampling decides which slots of a day each meter reports. The zero value
// reports every slot. At most one field may be set.
type Sampling struct {
	// Stride s >= 2: the meter reports slots o, o+s, o+2s, ... from an
	// offset o drawn uniformly from 0..s-1 (at most ceil(T/s) reports).
	Stride int
	// Count m >= 1: the meter reports m slots drawn uniformly without
	// replacement from the day's T.
	Count int
}

// String describes the sampling, e.g. "every slot", "1 in 4 slots".
func (s Sampling) String() string {
	switch {
	case s.Stride > 1:
		return fmt.Sprintf("1 in %d slots", s.Stride)
	case s.Count > 0:
		return fmt.Sprintf("%d random slots", s.Count)
	}
	return "every slot"
}

// Plan is a day's reporting schedule: which slots a meter reports and the
// epsilon of each report. It is immutable.
type Plan struct {
	Slots     int      // T, the slots of a day (the horizon)
	Sampling  Sampling // which slots
	Epsilon   float64  // privacy loss of one report
	Reports   int      // the most reports any meter sends per day
	DayBudget float64  // Reports * Epsilon: the most any meter spends per day
	Inclusion float64  // pi: the probability that a meter reports a given slot
}

// NewPlan returns the plan for slots slots per day. Exactly one of
// perReport (each report's epsilon) and perDay (a meter's epsilon per day,
// split evenly over its at most Reports reports) must be positive.
func NewPlan(slots int, s Sampling, perReport, perDay float64) (*Plan, error) {
	if slots <= 0 {
		return nil, fmt.Errorf("%w: %d slots per day; a day needs at least one slot", ErrInvalidConfig, slots)
	}
	p := &Plan{Slots: slots, Sampling: s}
	switch {
	case s.Stride != 0 && s.Count != 0:
		return nil, fmt.Errorf("%w: sampling sets both stride %d and count %d; choose one", ErrInvalidConfig, s.Stride, s.Count)
	case s.Stride < 0 || s.Stride == 1 || s.Stride > slots:
		return nil, fmt.Errorf("%w: sampling stride %d must be between 2 and the %d slots of a day (0 reports every slot)", ErrInvalidConfig, s.Stride, slots)
	case s.Count < 0 || s.Count > slots:
		return nil, fmt.Errorf("%w: sampling count %d must be between 1 and the %d slots of a day (0 reports every slot)", ErrInvalidConfig, s.Count, slots)
	case s.Stride > 1:
		p.Reports = (slots + s.Stride - 1) / s.Stride
		p.Inclusion = 1 / float64(s.Stride)
	case s.Count > 0:
		p.Reports = s.Count
		p.Inclusion = float64(s.Count) / float64(slots)
	default:
		p.Reports = slots
		p.Inclusion = 1
	}
	bad := func(v float64) bool { return !(v >= 0) || math.IsInf(v, 0) }
	switch {
	case bad(perReport) || bad(perDay):
		return nil, fmt.Errorf("%w: epsilon per report %v and per day %v must be finite and >= 0", ErrInvalidConfig, perReport, perDay)
	case (perReport > 0) == (perDay > 0):
		return nil, fmt.Errorf("%w: give exactly one of epsilon per report and epsilon per day (got %v and %v)", ErrInvalidConfig, perReport, perDay)
	case perReport > 0:
		p.Epsilon = perReport
		p.DayBudget = perReport * float64(p.Reports)
	default:
		p.Epsilon = perDay / float64(p.Reports)
		p.DayBudget = perDay
	}
	if !(p.Epsilon >= MinEpsilon && p.Epsilon <= MaxEpsilon) {
		return nil, fmt.Errorf("%w: each of a meter's %d reports would get epsilon %g, outside [%g, %g]; raise the day budget or sample fewer slots", ErrInvalidConfig, p.Reports, p.Epsilon, float64(MinEpsilon), float64(MaxEpsilon))
	}
	return p, nil
}

// Choose draws the slots one meter reports this day, ascending, into
// buf[:0] and returns them. buf needs capacity Slots; Choose then never
// allocates.
func (p *Plan) Choose(rng *rand.Rand, buf []int) []int {
	if cap(buf) < p.Slots {
		buf = make([]int, 0, p.Slots)
	}
	out := buf[:0]
	switch {
	case p.Sampling.Stride > 1:
		for t := rng.IntN(p.Sampling.Stride); t < p.Slots; t += p.Sampling.Stride {
			out = append(out, t)
		}
	case p.Sampling.Count > 0:
		all := buf[:p.Slots]
		for t := range all {
			all[t] = t
		}
		for i := 0; i < p.Sampling.Count; i++ { // partial Fisher-Yates
			j := i + rng.IntN(p.Slots-i)
			all[i], all[j] = all[j], all[i]
		}
		out = all[:p.Sampling.Count]
		slices.Sort(out)
	default:
		for t := 0; t < p.Slots; t++ {
			out = append(out, t)
		}
	}
	return out
}

// ErrBudgetExceeded is matched (errors.Is) by every BudgetError.
var ErrBudgetExceeded = errors.New("privacy budget exceeded")

// BudgetError is the Accountant's refusal of a report.
type BudgetError struct {
	Meter  int
	Spent  float64 // already spent today
	Charge float64 // the refused report's epsilon
	Limit  float64 // the day's budget
}

func (e *BudgetError) Error() string {
	return fmt.Sprintf("%v: meter %d has spent epsilon %g of its day budget %g; a report at %g would exceed it (sample fewer slots or lower the per-report epsilon)", ErrBudgetExceeded, e.Meter, e.Spent, e.Limit, e.Charge)
}

// Is makes errors.Is(err, ErrBudgetExceeded) true.
func (e *BudgetError) Is(target error) bool { return target == ErrBudgetExceeded }

// budgetSlack absorbs float rounding when a day budget is split into equal
// shares and added back up.
const budgetSlack = 1e-9

// Accountant is the privacy ledger of a population of meters under
// sequential composition: a meter's loss for the day is the sum of the
// epsilons of its reports that day, and a report that would push it past
// the day's limit (with a relative slack of 1e-9 for rounding) is refused.
// It is not safe for concurrent use.
type Accountant struct {
	limit   float64
	day     int
	spent   []float64 // today, per meter
	total   []float64 // all days, per meter
	reports []int64   // today, per meter
}

// NewAccountant returns a ledger for meters meters with a day budget of
// limit (+Inf for none).
func NewAccountant(meters int, limit float64) (*Accountant, error) {
	if meters <= 0 {
		return nil, fmt.Errorf("%w: an accountant needs at least one meter, got %d", ErrInvalidConfig, meters)
	}
	if !(limit > 0) {
		return nil, fmt.Errorf("%w: day budget %v must be positive (+Inf for no limit)", ErrInvalidConfig, limit)
	}
	return &Accountant{limit: limit, spent: make([]float64, meters), total: make([]float64, meters), reports: make([]int64, meters)}, nil
}

// Charge records a report at eps by meter, or refuses it with a
// *BudgetError if the meter's day budget does not cover it.
func (a *Accountant) Charge(meter int, eps float64) error {
	if meter < 0 || meter >= len(a.spent) {
		return fmt.Errorf("%w: meter %d is not one of the accountant's %d meters", ErrInvalidConfig, meter, len(a.spent))
	}
	if !(eps > 0) || math.IsInf(eps, 0) {
		return fmt.Errorf("%w: a report's epsilon %v must be positive and finite", ErrInvalidConfig, eps)
	}
	if s := a.spent[meter] + eps; s > a.limit*(1+budgetSlack) {
		return &BudgetError{Meter: meter, Spent: a.spent[meter], Charge: eps, Limit: a.limit}
	}
	a.spent[meter] += eps
	a.total[meter] += eps
	a.reports[meter]++
	return nil
}

// EndDay starts a new day: today's spending returns to zero; totals stay.
func (a *Accountant) EndDay() {
	a.day++
	clear(a.spent)
	clear(a.reports)
}

// Day returns the number of days ended so far.
func (a *Accountant) Day() int { return a.day }

// Limit returns the day budget.
func (a *Accountant) Limit() float64 { return a.limit }

// Spent returns what meter has spent today (0 for an unknown meter).
func (a *Accountant) Spent(meter int) float64 {
	if meter < 0 || meter >= len(a.spent) {
		return 0
	}
	return a.spent[meter]
}

// Total returns what meter has spent over all days (0 for an unknown meter).
func (a *Accountant) Total(meter int) float64 {
	if meter < 0 || meter >= len(a.total) {
		return 0
	}
	return a.total[meter]
}

// Reports returns how many reports meter sent today.
func (a *Accountant) Reports(meter int) int64 {
	if meter < 0 || meter >= len(a.reports) {
		return 0
	}
	return a.reports[meter]
}

// MaxSpent returns the largest day spending of any meter today.
func (a *Accountant) MaxSpent() float64 {
	m := 0.0
	for _, s := range a.spent {
		m = math.Max(m, s)
	}
	return m
}
