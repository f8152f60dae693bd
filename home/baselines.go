package home

import (
	"fmt"
	"math"
	"strings"
)

// Scheduler turns a home-day problem into a battery schedule. Every
// scheduler of this package is a pure function of the problem: no I/O, no
// goroutines, no randomness.
type Scheduler interface {
	Name() string
	Schedule(p *Problem) (*Schedule, error)
}

// SchedulerNames lists the schedulers in report order.
var SchedulerNames = []string{"optimal", "be", "nill", "stepping", "none"}

// DefaultStepKW is the stepping scheduler's default ladder step.
const DefaultStepKW = 1.0

// ByName returns the scheduler called name; levels configures optimal
// (0: DefaultLevels).
func ByName(name string, levels int) (Scheduler, error) {
	switch name {
	case "optimal":
		return Optimal{Levels: levels}, nil
	case "be":
		return BestEffort{}, nil
	case "nill":
		return NILL{}, nil
	case "stepping":
		return Stepping{StepKW: DefaultStepKW}, nil
	case "none":
		return None{}, nil
	}
	return nil, fmt.Errorf("%w: unknown scheduler %q; choose one of %s", ErrInvalid, name, strings.Join(SchedulerNames, ", "))
}

// policy proposes the battery's net power u (kW, > 0 charges, < 0
// discharges) for home slot t, given the SOC x at its start and the meter
// of the previous slot (the load of slot 0 before the first slot).
type policy func(t int, x, prevMeter float64) float64

// runPolicy executes an online policy under the feasibility guard: each
// proposal is clipped to the charger limits, meter >= 0 (without export),
// SOCMax, and the floor below which a later requirement (departure, return,
// end of day) could no longer be met. The guard keeps every heuristic
// feasible whenever the problem is; it is the only place the heuristics
// look ahead (through the floors, which know the trip and the end-of-day
// target but not the load).
func runPolicy(name string, p *Problem, pol policy) (*Schedule, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	T := p.Slots()
	b := &p.Battery
	d := &dp{p: p, rho: p.decay()} // for power()
	floor := p.floors()
	drive := p.driveKW()
	s := newSchedule(name, T)
	s.SOC[0] = p.SOC0
	prev := p.Load[0]
	for t := 0; t < T; t++ {
		x := s.SOC[t]
		if !p.Home(t) {
			s.Drive[t] = drive
			s.SOC[t+1] = x*d.rho - drive*p.DT/b.CapacityKWh
		} else {
			u := pol(t, x, prev)
			hi := math.Min(b.ChargeMaxKW, d.power(x, b.SOCMax))
			lo := math.Max(-b.DischargeMaxKW, d.power(x, floor[t+1]))
			if !p.AllowExport {
				lo = math.Max(lo, -p.Load[t])
			}
			if math.IsNaN(u) {
				u = 0
			}
			u = math.Min(math.Max(u, lo), hi)
			if u >= 0 {
				s.Charge[t] = u
				s.SOC[t+1] = x*d.rho + b.EtaCharge*u*p.DT/b.CapacityKWh
			} else {
				s.Discharge[t] = -u
				s.SOC[t+1] = x*d.rho + u*p.DT/(b.EtaDischarge*b.CapacityKWh)
			}
		}
		s.Meter[t] = p.Load[t] + s.Charge[t] - s.Discharge[t]
		prev = s.Meter[t]
	}
	return s, nil
}

// None uses the EV only as a car: it charges at full power from the moment
// it is plugged in until it holds what the next requirement asks (the trip
// before departure, the end-of-day SOC after it) and never discharges. Its
// meter is the household load plus ordinary EV charging.
type None struct{}

// Name implements Scheduler.
func (None) Name() string { return "none" }

// Schedule implements Scheduler.
func (None) Schedule(p *Problem) (*Schedule, error) {
	d := &dp{p: p, rho: p.decay()}
	return runPolicy("none", p, func(t int, x, _ float64) float64 {
		goal := p.SOCEnd
		if p.Trip != nil && t < p.Trip.Depart {
			goal = p.DepartSOC()
		}
		if x >= goal {
			return 0
		}
		return math.Max(0, d.power(x, goal))
	})
}

// BestEffort is the best-effort (BE) algorithm of Kalogridis et al. (2010):
// the battery holds the meter at its previous value while its limits allow,
// and the meter follows the load by as little as it must otherwise.
type BestEffort struct{}

// Name implements Scheduler.
func (BestEffort) Name() string { return "be" }

// Schedule implements Scheduler.
func (BestEffort) Schedule(p *Problem) (*Schedule, error) {
	return runPolicy("be", p, func(t int, _, prev float64) float64 { return prev - p.Load[t] })
}

// NILL is non-intrusive load levelling (McLaughlin, McDaniel and Aiello,
// 2011): the meter is held at a steady target K_ss; when the battery runs
// low it switches to a high-recovery target K_H (charging) until it is back
// to mid-range, and when it runs full to a low-recovery target K_L.
//
// K_ss is the day's mean household load over the at-home slots plus the
// energy the EV must recover over the day, spread over those slots: the
// only day-ahead knowledge NILL is given. K_H = max(2 K_ss, K_ss + 0.5 kW),
// K_L = K_ss / 2. "Low" means within 10 % of the usable range above the
// guard's floor, "mid-range" 30 % above it; "full" is within 5 % of SOCMax,
// left again at 20 %.
type NILL struct{}

// Name implements Scheduler.
func (NILL) Name() string { return "nill" }

// Schedule implements Scheduler.
func (NILL) Schedule(p *Problem) (*Schedule, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	b := &p.Battery
	var energy, home float64
	for t, l := range p.Load {
		if p.Home(t) {
			energy += l * p.DT
			home += p.DT
		}
	}
	recover := (p.SOCEnd - p.SOC0) * b.CapacityKWh / b.EtaCharge
	if p.Trip != nil {
		recover += p.Trip.EnergyKWh() / b.EtaCharge
	}
	kss := math.Max(0, (energy+math.Max(recover, 0))/home)
	kh, kl := math.Max(2*kss, kss+0.5), kss/2
	span := b.SOCMax - b.SOCMin
	floor := p.floors()
	const (
		steady = iota
		high
		low
	)
	state := steady
	return runPolicy("nill", p, func(t int, x, _ float64) float64 {
		f := floor[t]
		switch state {
		case steady:
			if x < f+0.1*span {
				state = high
			} else if x > b.SOCMax-0.05*span {
				state = low
			}
		case high:
			if x >= f+0.3*span {
				state = steady
			}
		case low:
			if x <= b.SOCMax-0.2*span {
				state = steady
			}
		}
		target := kss
		switch state {
		case high:
			target = kh
		case low:
			target = kl
		}
		return target - p.Load[t]
	})
}

// Stepping is the stepping approach of Yang et al. (2012): the meter only
// shows multiples of StepKW. When the battery is above the middle of its
// usable range (between the guard's floor and SOCMax) the meter shows the
// step below the load and the battery supplies the rest; otherwise the
// step above and the battery absorbs the difference.
type Stepping struct {
	StepKW float64 // ladder step, kW; > 0
}

// Name implements Scheduler.
func (Stepping) Name() string { return "stepping" }

// Schedule implements Scheduler.
func (st Stepping) Schedule(p *Problem) (*Schedule, error) {
	if !(st.StepKW > 0) || math.IsInf(st.StepKW, 0) {
		return nil, fmt.Errorf("%w: stepping step %v kW must be positive", ErrInvalid, st.StepKW)
	}
	if err := p.Validate(); err != nil {
		return nil, err
	}
	floor := p.floors()
	return runPolicy("stepping", p, func(t int, x, _ float64) float64 {
		l := p.Load[t]
		mid := (floor[t] + p.Battery.SOCMax) / 2
		var m float64
		if x > mid {
			m = math.Floor(l/st.StepKW) * st.StepKW
		} else {
			m = math.Ceil(l/st.StepKW) * st.StepKW
		}
		return m - l
	})
}
