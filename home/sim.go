package home

import (
	"fmt"
	"math"
	"math/rand/v2"
)

// Config describes a population of home-days: everything the generator
// and the schedulers need besides the seed.
type Config struct {
	SlotMinutes int     // meter resolution, minutes; divides 1440
	Tariff      Tariff  // the supplier's prices
	Battery     Battery // every home's EV battery
	Alpha       float64 // preference factor in (0, 1)
	Beta        float64 // money per kW^2 of leakage
	Levels      int     // optimal scheduler's SOC grid levels
	StepKW      float64 // stepping scheduler's ladder step
	AllowExport bool    // meter may go negative (net metering at the same price)
	TripKM      float64 // > 0: every commuting day drives this far; 0: drawn from [15, 80] km
	CommuteProb float64 // probability that the EV makes the day's trip
	KMPerKWh    float64 // vehicle efficiency
	ReserveKWh  float64 // energy that must remain at departure on top of the trip
}

// DefaultConfig is the configuration docs/HOME.md describes.
func DefaultConfig() Config {
	return Config{
		SlotMinutes: 15, Tariff: TimeOfUse(), Battery: DefaultBattery,
		Alpha: 0.5, Beta: 0.2, Levels: DefaultLevels, StepKW: DefaultStepKW,
		CommuteProb: 0.75, KMPerKWh: 6.5, ReserveKWh: 5,
	}
}

// Validate checks the configuration and names the bad value and its fix.
func (c *Config) Validate() error {
	if c.SlotMinutes < 1 || MinutesPerDay%c.SlotMinutes != 0 {
		return fmt.Errorf("%w: slot length %d min must divide a day (1440 min), e.g. 5, 15, 30 or 60", ErrInvalid, c.SlotMinutes)
	}
	if MinutesPerDay/c.SlotMinutes < 2 {
		return fmt.Errorf("%w: slot length %d min leaves fewer than 2 slots a day", ErrInvalid, c.SlotMinutes)
	}
	if err := c.Tariff.Validate(); err != nil {
		return err
	}
	if err := c.Battery.Validate(); err != nil {
		return err
	}
	if !(c.Alpha > 0 && c.Alpha < 1) {
		return fmt.Errorf("%w: alpha = %v is outside (0, 1); choose alpha strictly between 0 (privacy only) and 1 (cost only)", ErrInvalid, c.Alpha)
	}
	if !(c.Beta >= 0) || math.IsInf(c.Beta, 0) {
		return fmt.Errorf("%w: beta = %v; the money value of one kW^2 of leakage must be finite and >= 0", ErrInvalid, c.Beta)
	}
	if c.Levels != 0 && (c.Levels < 2 || c.Levels > MaxLevels) {
		return fmt.Errorf("%w: %d SOC levels; use 2 to %d", ErrInvalid, c.Levels, MaxLevels)
	}
	if !(c.StepKW > 0) || math.IsInf(c.StepKW, 0) {
		return fmt.Errorf("%w: stepping step %v kW must be positive", ErrInvalid, c.StepKW)
	}
	if !(c.TripKM >= 0) || math.IsInf(c.TripKM, 0) {
		return fmt.Errorf("%w: trip distance %v km must be finite and >= 0 (0: drawn per home)", ErrInvalid, c.TripKM)
	}
	if !(c.CommuteProb >= 0 && c.CommuteProb <= 1) {
		return fmt.Errorf("%w: commute probability %v must be in [0, 1]", ErrInvalid, c.CommuteProb)
	}
	if !(c.KMPerKWh > 0) || math.IsInf(c.KMPerKWh, 0) {
		return fmt.Errorf("%w: vehicle efficiency %v km/kWh must be positive", ErrInvalid, c.KMPerKWh)
	}
	if !(c.ReserveKWh >= 0) || math.IsInf(c.ReserveKWh, 0) {
		return fmt.Errorf("%w: reserve %v kWh must be finite and >= 0", ErrInvalid, c.ReserveKWh)
	}
	return nil
}

// HomeDay is one generated home-day: its household, its minute-level day,
// the scheduling problem and the attacker's ground truth.
type HomeDay struct {
	ID      int
	Day     *Day
	Problem *Problem
	Truth   [NumKinds][]bool // per kind, per slot; nil rows for kinds the household lacks
}

// NewHomeDay generates home id of a population. Its random stream is
// PCG(seed, id), so each home is the same whatever else is generated.
// The supplier's prices reach the problem through the seed's steps 1 and 2
// (Tariff.Announce, SmartMeter.Relay).
func NewHomeDay(seed uint64, id int, c *Config) (*HomeDay, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	rng := rand.New(rand.NewPCG(seed, uint64(id)))
	hh := NewHousehold(rng)
	day := NewDay(rng, hh)
	slots := MinutesPerDay / c.SlotMinutes
	dt := float64(c.SlotMinutes) / 60
	var meter SmartMeter
	sig, err := meter.Relay(c.Tariff.Announce("supplier", uint64(id)+1, slots, dt))
	if err != nil {
		return nil, err
	}
	soc0 := uniform(rng, 0.6, 0.9)
	p := &Problem{
		DT: dt, Load: day.SlotLoad(c.SlotMinutes), Price: sig.Prices, Battery: c.Battery,
		SOC0: soc0, SOCEnd: soc0, AllowExport: c.AllowExport, Alpha: c.Alpha, Beta: c.Beta,
	}
	p.SOC0 = math.Min(math.Max(p.SOC0, c.Battery.SOCMin), c.Battery.SOCMax)
	p.SOCEnd = p.SOC0
	// Draw the trip even when it is not made, so that the streams agree.
	dep := clock(rng, 7.75, 30, 6, 10)
	ret := clock(rng, 17.75, 45, 15, 21)
	km := uniform(rng, 15, 80)
	if c.TripKM > 0 {
		km = c.TripKM
	}
	if rng.Float64() < c.CommuteProb {
		p.Trip = &Trip{
			Depart: max(1, dep/c.SlotMinutes), Return: min(slots, ret/c.SlotMinutes),
			DistanceKM: km, KMPerKWh: c.KMPerKWh, ReserveKWh: c.ReserveKWh,
		}
		if p.Trip.Return <= p.Trip.Depart {
			p.Trip.Return = min(slots, p.Trip.Depart+1)
		}
	}
	hd := &HomeDay{ID: id, Day: day, Problem: p}
	for i, a := range hh.Appliances {
		hd.Truth[a.Kind] = day.Truth(i, c.SlotMinutes)
	}
	if err := p.Validate(); err != nil {
		return nil, fmt.Errorf("home %d: %w", id, err)
	}
	return hd, nil
}

// Metrics are one schedule's cost and privacy figures.
type Metrics struct {
	Cost      float64            // sum_t r(t) P_meter(t) dt, money
	Leakage   float64            // sum_t (P_meter(t+1) - P_meter(t))^2, kW^2
	Objective float64            // alpha * cost + (1 - alpha) * beta * leakage
	R2        float64            // R2(meter, load)
	LaggedR2  float64            // best R2 over lags within +-MaxLag slots
	Lag       int                // the lag that gives LaggedR2
	MI        float64            // mutual information, bits
	F1        float64            // the strongest attack's macro F1: max of the three below
	F1CO      float64            // combinatorial optimisation's macro F1
	F1Edge    float64            // edge detector's macro F1
	F1Prior   float64            // habits-only guess's macro F1 (the same for every meter)
	F1By      string             // which attack gave F1: "co", "edge" or "prior"
	F1ByKind  map[string]float64 // per kind, of the strongest attack
	EndSOC    float64            // SOC at the end of the day
}

// Evaluate computes a schedule's metrics against the home-day's load and
// ground truth; att may be nil to skip the attacker.
func Evaluate(hd *HomeDay, s *Schedule, att *Attacker) Metrics {
	p := hd.Problem
	var m Metrics
	m.Cost, m.Leakage, m.Objective = p.Objective(s)
	m.R2 = R2(s.Meter, p.Load)
	m.LaggedR2, m.Lag = LaggedR2(s.Meter, p.Load, MaxLag)
	m.MI = MutualInformation(s.Meter, p.Load)
	m.EndSOC = s.SOC[len(s.SOC)-1]
	if att != nil {
		dco, ded, dpr := att.Detections(s.Meter)
		co, ed, pr := F1(dco, hd.Truth), F1(ded, hd.Truth), F1(dpr, hd.Truth)
		m.F1CO, m.F1Edge, m.F1Prior = co.F1, ed.F1, pr.F1
		best, by := co, "co"
		if ed.F1 > best.F1 {
			best, by = ed, "edge"
		}
		if pr.F1 > best.F1 {
			best, by = pr, "prior"
		}
		m.F1, m.F1By, m.F1ByKind = best.F1, by, best.ByKind
	}
	return m
}

// Result is one scheduler's outcome on one home-day.
type Result struct {
	Scheduler string
	Alpha     float64
	Schedule  *Schedule
	Metrics   Metrics
}

// Schedulers returns the configured schedulers named in names (all of
// SchedulerNames when names is empty).
func (c *Config) Schedulers(names []string) ([]Scheduler, error) {
	if len(names) == 0 {
		names = SchedulerNames
	}
	var out []Scheduler
	for _, n := range names {
		s, err := ByName(n, c.Levels)
		if err != nil {
			return nil, err
		}
		if _, ok := s.(Stepping); ok {
			s = Stepping{StepKW: c.StepKW}
		}
		out = append(out, s)
	}
	return out, nil
}

// Run schedules one home-day with each scheduler and evaluates it.
func Run(hd *HomeDay, scheds []Scheduler, att *Attacker) ([]Result, error) {
	out := make([]Result, 0, len(scheds))
	for _, sc := range scheds {
		s, err := sc.Schedule(hd.Problem)
		if err != nil {
			return nil, fmt.Errorf("home %d, scheduler %s: %w", hd.ID, sc.Name(), err)
		}
		out = append(out, Result{Scheduler: sc.Name(), Alpha: hd.Problem.Alpha, Schedule: s, Metrics: Evaluate(hd, s, att)})
	}
	return out, nil
}

// Sweep solves the home-day with the optimal scheduler at each alpha (the
// problem is copied; hd is not changed).
func Sweep(hd *HomeDay, alphas []float64, levels int, att *Attacker) ([]Result, error) {
	out := make([]Result, 0, len(alphas))
	for _, a := range alphas {
		p := *hd.Problem
		p.Alpha = a
		s, err := Optimal{Levels: levels}.Schedule(&p)
		if err != nil {
			return nil, fmt.Errorf("home %d, alpha %v: %w", hd.ID, a, err)
		}
		h := *hd
		h.Problem = &p
		out = append(out, Result{Scheduler: "optimal", Alpha: a, Schedule: s, Metrics: Evaluate(&h, s, att)})
	}
	return out, nil
}

// DefaultAlphas is the sweep's grid of alpha values.
var DefaultAlphas = []float64{0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.98, 0.99}
