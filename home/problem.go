package home

import (
	"errors"
	"fmt"
	"math"
)

// ErrInvalid is wrapped by every error that Validate, a Scheduler or a
// decoder of this package returns for input it cannot use.
var ErrInvalid = errors.New("home: invalid input")

// ErrInfeasible is wrapped when the input is well formed but no schedule
// can meet the battery's constraints (for example a trip the battery cannot
// cover, or a grid too coarse for the optimal scheduler).
var ErrInfeasible = errors.New("home: infeasible")

// Battery is the EV battery of docs/ARCHITECTURE.md C4.
type Battery struct {
	CapacityKWh        float64 // E_bat, kWh
	SOCMin, SOCMax     float64 // state-of-charge bounds, fractions of E_bat
	ChargeMaxKW        float64 // Pch_max, kW drawn from the home
	DischargeMaxKW     float64 // Pdis_max, kW delivered to the home
	EtaCharge          float64 // eta_c in (0, 1]
	EtaDischarge       float64 // eta_d in (0, 1]
	SelfDischargePerHr float64 // fraction of the charge lost per hour, [0, 1)
}

// DefaultBattery is a mid-size EV with a bidirectional 7.4 kW home charger.
var DefaultBattery = Battery{
	CapacityKWh: 60, SOCMin: 0.1, SOCMax: 0.95,
	ChargeMaxKW: 7.4, DischargeMaxKW: 7.4,
	EtaCharge: 0.95, EtaDischarge: 0.95,
	SelfDischargePerHr: 3e-5, // about 2 % a month
}

// Trip is the day's drive: the EV is away for slots Depart <= t < Return.
// At departure the battery must hold at least the trip energy
// DistanceKM / KMPerKWh plus ReserveKWh; the trip energy is drawn from the
// battery while the EV is away.
type Trip struct {
	Depart, Return int     // slots; 1 <= Depart < Return <= Slots
	DistanceKM     float64 // round trip, km
	KMPerKWh       float64 // vehicle efficiency
	ReserveKWh     float64 // energy that must remain on top of the trip at departure
}

// EnergyKWh is the energy the trip draws from the battery.
func (tr *Trip) EnergyKWh() float64 { return tr.DistanceKM / tr.KMPerKWh }

// Problem is one home-day for a scheduler: the household load, the
// supplier's prices, the EV battery, its trip and the user's trade-off.
//
// The objective (docs/ARCHITECTURE.md C4, seed 000 eq. 9) is
//
//	alpha * sum_t r(t) P_meter(t) dt + (1 - alpha) * beta * sum_t (P_meter(t+1) - P_meter(t))^2
//
// over t = 0..T-1 (the difference sum over t = 0..T-2), with
// P_meter = P_load + P_ch - P_dis.
type Problem struct {
	DT          float64   // slot length, hours
	Load        []float64 // P_load(t), kW, T values
	Price       []float64 // r(t), money per kWh, T values, >= 0
	Battery     Battery
	SOC0        float64 // state of charge at the start of slot 0
	SOCEnd      float64 // the battery must end the day with at least this state of charge
	Trip        *Trip   // nil: the EV stays at home all day
	AllowExport bool    // if false, P_meter >= 0 in every slot
	Alpha       float64 // preference factor, in (0, 1)
	Beta        float64 // money per kW^2 of leakage, >= 0
}

// Slots returns T, the number of slots.
func (p *Problem) Slots() int { return len(p.Load) }

// Home reports whether the EV is plugged in at home during slot t.
func (p *Problem) Home(t int) bool {
	return p.Trip == nil || t < p.Trip.Depart || t >= p.Trip.Return
}

// decay is 1 - delta for one slot.
func (p *Problem) decay() float64 { return math.Pow(1-p.Battery.SelfDischargePerHr, p.DT) }

// DepartSOC is the least state of charge the battery must hold at the
// start of the departure slot: the trip energy plus the reserve, and enough
// that the trip leaves it at SOCMin or above on return. It is 0 without a
// trip.
func (p *Problem) DepartSOC() float64 {
	if p.Trip == nil {
		return 0
	}
	b := &p.Battery
	byReserve := (p.Trip.EnergyKWh() + p.Trip.ReserveKWh) / b.CapacityKWh
	// Driving: SOC(Return) = rho^n SOC(Depart) - e sum_{k<n} rho^k, with e
	// the per-slot trip energy as a fraction of capacity.
	n := p.Trip.Return - p.Trip.Depart
	rho := p.decay()
	e := p.Trip.EnergyKWh() / float64(n) / b.CapacityKWh
	byBound := (b.SOCMin + e*geomSum(rho, n)) / math.Pow(rho, float64(n))
	return math.Max(byReserve, byBound)
}

// geomSum is sum_{k<n} rho^k.
func geomSum(rho float64, n int) float64 {
	s, f := 0.0, 1.0
	for k := 0; k < n; k++ {
		s += f
		f *= rho
	}
	return s
}

// Validate checks the problem and names the first bad value and its fix.
// A valid problem has at least one feasible schedule (in continuous SOC).
func (p *Problem) Validate() error {
	T := len(p.Load)
	if T < 2 {
		return fmt.Errorf("%w: %d slots; a day needs at least 2", ErrInvalid, T)
	}
	if !(p.DT > 0) || math.IsInf(p.DT, 0) {
		return fmt.Errorf("%w: slot length %v h must be positive", ErrInvalid, p.DT)
	}
	if len(p.Price) != T {
		return fmt.Errorf("%w: %d prices for %d slots; give one price per slot", ErrInvalid, len(p.Price), T)
	}
	for t := 0; t < T; t++ {
		if !finite(p.Load[t]) || p.Load[t] < 0 {
			return fmt.Errorf("%w: load %v kW in slot %d; household load must be a finite number >= 0", ErrInvalid, p.Load[t], t)
		}
		if !finite(p.Price[t]) || p.Price[t] < 0 {
			return fmt.Errorf("%w: price %v in slot %d is negative or not finite; give prices >= 0", ErrInvalid, p.Price[t], t)
		}
	}
	if !(p.Alpha > 0 && p.Alpha < 1) {
		return fmt.Errorf("%w: alpha = %v is outside (0, 1); choose alpha strictly between 0 (privacy only) and 1 (cost only)", ErrInvalid, p.Alpha)
	}
	if !(p.Beta >= 0) || math.IsInf(p.Beta, 0) {
		return fmt.Errorf("%w: beta = %v; the money value of one kW^2 of leakage must be finite and >= 0", ErrInvalid, p.Beta)
	}
	if err := p.Battery.Validate(); err != nil {
		return err
	}
	b := &p.Battery
	if !(p.SOC0 >= b.SOCMin && p.SOC0 <= b.SOCMax) {
		return fmt.Errorf("%w: initial SOC %v is outside [%v, %v]; start within the battery's bounds", ErrInvalid, p.SOC0, b.SOCMin, b.SOCMax)
	}
	if !(p.SOCEnd >= 0 && p.SOCEnd <= b.SOCMax) {
		return fmt.Errorf("%w: end-of-day SOC %v is outside [0, %v]; lower it", ErrInvalid, p.SOCEnd, b.SOCMax)
	}
	if tr := p.Trip; tr != nil {
		if tr.Depart < 1 || tr.Return <= tr.Depart || tr.Return > T {
			return fmt.Errorf("%w: trip slots [%d, %d) must satisfy 1 <= depart < return <= %d (the EV is at home in slot 0)", ErrInvalid, tr.Depart, tr.Return, T)
		}
		if !(tr.DistanceKM >= 0) || math.IsInf(tr.DistanceKM, 0) {
			return fmt.Errorf("%w: trip distance %v km must be finite and >= 0", ErrInvalid, tr.DistanceKM)
		}
		if !(tr.KMPerKWh > 0) || math.IsInf(tr.KMPerKWh, 0) {
			return fmt.Errorf("%w: vehicle efficiency %v km/kWh must be positive", ErrInvalid, tr.KMPerKWh)
		}
		if !(tr.ReserveKWh >= 0) || math.IsInf(tr.ReserveKWh, 0) {
			return fmt.Errorf("%w: reserve %v kWh must be finite and >= 0", ErrInvalid, tr.ReserveKWh)
		}
		if need := p.DepartSOC(); need > b.SOCMax*(1+1e-12) {
			usable := b.CapacityKWh * (b.SOCMax - b.SOCMin)
			return fmt.Errorf("%w: a %.1f km trip needs %.2f kWh plus a %.2f kWh reserve at departure, but the battery holds at most %.2f kWh usable (%.0f kWh between SOC %.2f and %.2f); shorten the trip to at most %.0f km, lower the reserve or use a larger battery",
				ErrInfeasible, tr.DistanceKM, tr.EnergyKWh(), tr.ReserveKWh, usable, b.CapacityKWh, b.SOCMin, b.SOCMax,
				math.Floor(math.Max(0, math.Min(usable, b.CapacityKWh*b.SOCMax-tr.ReserveKWh))*tr.KMPerKWh))
		}
	}
	floor := p.floors()
	if floor[0] > p.SOC0*(1+1e-12)+1e-12 {
		what := "the end-of-day SOC"
		if p.Trip != nil && floor[p.Trip.Depart] > p.SOCEnd {
			what = fmt.Sprintf("the trip (SOC %.3f at departure in slot %d)", p.DepartSOC(), p.Trip.Depart)
		}
		return fmt.Errorf("%w: from initial SOC %.3f the charger (%.1f kW) cannot reach %s in time (SOC %.3f needed now); start with more charge, charge faster or leave later",
			ErrInfeasible, p.SOC0, b.ChargeMaxKW, what, floor[0])
	}
	for t, f := range floor {
		if f > b.SOCMax*(1+1e-12) {
			return fmt.Errorf("%w: the battery would need SOC %.3f at the start of slot %d, above SOCMax %.3f; lower the end-of-day SOC or the trip", ErrInfeasible, f, t, b.SOCMax)
		}
	}
	return nil
}

// Validate checks the battery's parameters.
func (b *Battery) Validate() error {
	switch {
	case !(b.CapacityKWh > 0) || math.IsInf(b.CapacityKWh, 0):
		return fmt.Errorf("%w: battery capacity %v kWh must be positive", ErrInvalid, b.CapacityKWh)
	case !(b.SOCMin >= 0 && b.SOCMin < b.SOCMax && b.SOCMax <= 1):
		return fmt.Errorf("%w: SOC bounds [%v, %v] must satisfy 0 <= min < max <= 1", ErrInvalid, b.SOCMin, b.SOCMax)
	case !(b.ChargeMaxKW > 0) || math.IsInf(b.ChargeMaxKW, 0):
		return fmt.Errorf("%w: charger limit %v kW must be positive", ErrInvalid, b.ChargeMaxKW)
	case !(b.DischargeMaxKW >= 0) || math.IsInf(b.DischargeMaxKW, 0):
		return fmt.Errorf("%w: discharge limit %v kW must be finite and >= 0", ErrInvalid, b.DischargeMaxKW)
	case !(b.EtaCharge > 0 && b.EtaCharge <= 1):
		return fmt.Errorf("%w: charging efficiency %v must be in (0, 1]", ErrInvalid, b.EtaCharge)
	case !(b.EtaDischarge > 0 && b.EtaDischarge <= 1):
		return fmt.Errorf("%w: discharging efficiency %v must be in (0, 1]", ErrInvalid, b.EtaDischarge)
	case !(b.SelfDischargePerHr >= 0 && b.SelfDischargePerHr < 1):
		return fmt.Errorf("%w: self-discharge %v per hour must be in [0, 1)", ErrInvalid, b.SelfDischargePerHr)
	}
	return nil
}

// driveKW is the constant power the trip draws from the battery in each
// away slot.
func (p *Problem) driveKW() float64 {
	if p.Trip == nil {
		return 0
	}
	return p.Trip.EnergyKWh() / (float64(p.Trip.Return-p.Trip.Depart) * p.DT)
}

// floors returns, for every slot boundary t = 0..T, the least state of
// charge from which every later requirement (departure, return above
// SOCMin, end of day) can still be met by charging at full power whenever
// the EV is at home. Heuristic schedulers never go below it.
func (p *Problem) floors() []float64 {
	T := len(p.Load)
	b := &p.Battery
	rho := p.decay()
	up := b.EtaCharge * b.ChargeMaxKW * p.DT / b.CapacityKWh
	drive := p.driveKW() * p.DT / b.CapacityKWh
	f := make([]float64, T+1)
	f[T] = math.Max(p.SOCEnd, b.SOCMin)
	for t := T - 1; t >= 0; t-- {
		if p.Home(t) {
			f[t] = (f[t+1] - up) / rho
		} else {
			f[t] = (f[t+1] + drive) / rho
		}
		if p.Trip != nil && t == p.Trip.Depart {
			f[t] = math.Max(f[t], p.DepartSOC())
		}
		f[t] = math.Max(f[t], b.SOCMin)
	}
	return f
}

// Schedule is a scheduler's plan for one home-day. Power series have one
// value per slot; SOC has T+1 values, SOC[t] at the start of slot t.
type Schedule struct {
	Scheduler string
	Charge    []float64 // P_ch(t), kW drawn from the home into the battery
	Discharge []float64 // P_dis(t), kW delivered by the battery to the home
	Drive     []float64 // kW drawn from the battery by driving (away slots only)
	Meter     []float64 // P_meter(t) = P_load(t) + P_ch(t) - P_dis(t), kW
	SOC       []float64 // T+1 values
}

func newSchedule(name string, T int) *Schedule {
	return &Schedule{
		Scheduler: name,
		Charge:    make([]float64, T), Discharge: make([]float64, T), Drive: make([]float64, T),
		Meter: make([]float64, T), SOC: make([]float64, T+1),
	}
}

// Objective returns the schedule's money cost sum_t r(t) P_meter(t) dt, its
// leakage sum_t (P_meter(t+1) - P_meter(t))^2 in kW^2, and the weighted
// objective alpha*cost + (1-alpha)*beta*leakage.
func (p *Problem) Objective(s *Schedule) (cost, leakage, objective float64) {
	for t, m := range s.Meter {
		cost += p.Price[t] * m * p.DT
		if t > 0 {
			d := m - s.Meter[t-1]
			leakage += d * d
		}
	}
	return cost, leakage, p.Alpha*cost + (1-p.Alpha)*p.Beta*leakage
}

// checkTol is the relative tolerance of Check.
const checkTol = 1e-7

// Check verifies every constraint of docs/ARCHITECTURE.md C4 on a schedule and names
// the first violation: series lengths; 0 <= P_ch <= Pch_max and
// 0 <= P_dis <= Pdis_max with never both positive (the binary s(t));
// no charging or discharging while away and no driving at home; the SOC
// recursion SOC(t+1) = SOC(t)(1-delta) + (eta_c P_ch - P_dis/eta_d - P_drive) dt / E_bat;
// SOC bounds; the departure and end-of-day requirements; the trip's energy
// drawn in full; P_meter = P_load + P_ch - P_dis; and P_meter >= 0 unless
// export is allowed. Tolerances are relative, 1e-7.
func (p *Problem) Check(s *Schedule) error {
	T := len(p.Load)
	if len(s.Charge) != T || len(s.Discharge) != T || len(s.Drive) != T || len(s.Meter) != T || len(s.SOC) != T+1 {
		return fmt.Errorf("%w: schedule series lengths %d/%d/%d/%d/%d, want %d (SOC %d)", ErrInvalid, len(s.Charge), len(s.Discharge), len(s.Drive), len(s.Meter), len(s.SOC), T, T+1)
	}
	b := &p.Battery
	rho := p.decay()
	socTol := checkTol
	pTol := checkTol * math.Max(b.ChargeMaxKW, b.DischargeMaxKW)
	if math.Abs(s.SOC[0]-p.SOC0) > socTol {
		return fmt.Errorf("schedule %s: SOC starts at %v, not the initial %v", s.Scheduler, s.SOC[0], p.SOC0)
	}
	drawn := 0.0
	for t := 0; t < T; t++ {
		ch, dis, dr := s.Charge[t], s.Discharge[t], s.Drive[t]
		if ch < -pTol || ch > b.ChargeMaxKW+pTol || dis < -pTol || dis > b.DischargeMaxKW+pTol || dr < -pTol {
			return fmt.Errorf("schedule %s slot %d: charge %v kW, discharge %v kW, drive %v kW outside [0, %v], [0, %v], >= 0", s.Scheduler, t, ch, dis, dr, b.ChargeMaxKW, b.DischargeMaxKW)
		}
		if ch > pTol && dis > pTol {
			return fmt.Errorf("schedule %s slot %d: charges %v kW and discharges %v kW at once", s.Scheduler, t, ch, dis)
		}
		if !p.Home(t) && (ch > pTol || dis > pTol) {
			return fmt.Errorf("schedule %s slot %d: the EV is away but charges %v kW / discharges %v kW", s.Scheduler, t, ch, dis)
		}
		if p.Home(t) && dr > pTol {
			return fmt.Errorf("schedule %s slot %d: the EV is at home but drives %v kW", s.Scheduler, t, dr)
		}
		drawn += dr * p.DT
		want := s.SOC[t]*rho + (b.EtaCharge*ch-dis/b.EtaDischarge-dr)*p.DT/b.CapacityKWh
		if math.Abs(s.SOC[t+1]-want) > socTol {
			return fmt.Errorf("schedule %s slot %d: SOC goes %v -> %v, the battery equation gives %v", s.Scheduler, t, s.SOC[t], s.SOC[t+1], want)
		}
		if m := p.Load[t] + ch - dis; math.Abs(s.Meter[t]-m) > pTol*(1+math.Abs(m)) {
			return fmt.Errorf("schedule %s slot %d: meter %v kW, load + charge - discharge = %v kW", s.Scheduler, t, s.Meter[t], m)
		}
		if !p.AllowExport && s.Meter[t] < -pTol {
			return fmt.Errorf("schedule %s slot %d: meter %v kW < 0 but export is not allowed", s.Scheduler, t, s.Meter[t])
		}
	}
	for t, v := range s.SOC {
		if v < b.SOCMin-socTol || v > b.SOCMax+socTol {
			return fmt.Errorf("schedule %s: SOC %v at boundary %d outside [%v, %v]", s.Scheduler, v, t, b.SOCMin, b.SOCMax)
		}
	}
	if tr := p.Trip; tr != nil {
		if need := p.DepartSOC(); s.SOC[tr.Depart] < need-socTol {
			return fmt.Errorf("schedule %s: SOC %v at departure (slot %d), the trip needs %v", s.Scheduler, s.SOC[tr.Depart], tr.Depart, need)
		}
		if e := tr.EnergyKWh(); drawn < e*(1-checkTol)-1e-9 {
			return fmt.Errorf("schedule %s: the trip draws %v kWh, it needs %v", s.Scheduler, drawn, e)
		}
	}
	if s.SOC[T] < p.SOCEnd-socTol {
		return fmt.Errorf("schedule %s: ends the day at SOC %v, below the required %v", s.Scheduler, s.SOC[T], p.SOCEnd)
	}
	return nil
}

func finite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }
