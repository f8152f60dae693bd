package charging

import (
	"fmt"
	"math"
	"sort"
)

// Battery vehicles (V2G, docs/ARCHITECTURE.md, "V2G discharging").
//
// A vehicle with a battery (EV.Capacity > 0) keeps a state of charge S in
// kWh. While plugged in it charges c(t) in [0, pmax] and discharges d(t) in
// [0, pdis] (grid side, kW); its net power, the only thing it reports, is
// x(t) = c(t) - d(t). Over one slot
//
//	S(t+1) = S(t) + a c(t) - b d(t),   a = eta_c dt,  b = dt / eta_d
//
// and floor <= S <= capacity after every slot, S >= the departure need at
// departure, S = SOCArrive at arrival.
//
// The set of net schedules x with losses is not convex (an SOC upper bound
// on a concave function of x). The standard convex formulation keeps c and
// d as separate variables and lets both be positive in one slot: the
// battery may burn energy in the charger, which no real battery does. That
// relaxation is a convex polytope in (c, d), and it is exact - some optimum
// never charges and discharges in one slot - whenever the price the vehicle
// sees, A(t) + w_b(t), is positive in every plugged-in slot and the round
// trip loses energy (eta_c eta_d < 1): lowering c(t) by e and d(t) by
// eta_c eta_d e leaves S unchanged and lowers x(t), so a simultaneous pair
// is never optimal. Valley filling on a feeder whose load stays positive
// (every scenario gridveil ships) is therefore solved exactly; a region
// whose total load goes negative (export) can see simultaneous pairs, and
// Solution.Simultaneous reports the largest one. TestRelaxationExact shows
// both cases.

// Battery reports whether the vehicle has a battery model (Capacity > 0):
// a state of charge with bounds in every slot, and discharging if PDis > 0.
// Vehicles without one are charging-only: they store exactly Energy.
func (ev *EV) Battery() bool { return ev.Capacity > 0 }

// chargeGain and dischargeLoss are a and b of the SOC update, kWh per kW.
func (ev *EV) chargeGain(dt float64) float64    { return ev.Efficiency * dt }
func (ev *EV) dischargeLoss(dt float64) float64 { return dt / ev.DisEfficiency }

// validateBattery checks a battery vehicle's fields and that its set is not
// empty, naming the vehicle and what to change.
func (ev *EV) validateBattery(dt float64) error {
	name := ev.ID
	if !(ev.Capacity > 0) || math.IsInf(ev.Capacity, 0) {
		return fmt.Errorf("%w: EV %q: battery capacity %v kWh must be positive and finite", ErrInvalidProblem, name, ev.Capacity)
	}
	if ev.Energy != 0 {
		return fmt.Errorf("%w: EV %q: energy_kwh %v is for charging-only vehicles; a vehicle with a battery (capacity %v kWh) states its departure need as soc_depart_kwh instead", ErrInvalidProblem, name, ev.Energy, ev.Capacity)
	}
	if !(ev.PDis >= 0) || math.IsInf(ev.PDis, 0) {
		return fmt.Errorf("%w: EV %q: discharge limit pdis %v kW must be finite and >= 0 (0: the vehicle only charges)", ErrInvalidProblem, name, ev.PDis)
	}
	if !(ev.DisEfficiency > 0 && ev.DisEfficiency <= 1) {
		return fmt.Errorf("%w: EV %q: discharge efficiency %v must be in (0, 1]; use 1 for a lossless model", ErrInvalidProblem, name, ev.DisEfficiency)
	}
	if !(ev.Degradation >= 0) || math.IsInf(ev.Degradation, 0) {
		return fmt.Errorf("%w: EV %q: degradation cost %v must be finite and >= 0", ErrInvalidProblem, name, ev.Degradation)
	}
	for _, f := range []struct {
		what string
		v    float64
	}{{"arrival SOC", ev.SOCArrive}, {"SOC floor", ev.SOCMin}, {"departure need", ev.SOCDepart}} {
		if !(f.v >= 0) || math.IsInf(f.v, 0) {
			return fmt.Errorf("%w: EV %q: %s %v kWh must be finite and >= 0", ErrInvalidProblem, name, f.what, f.v)
		}
		if f.v > ev.Capacity {
			return fmt.Errorf("%w: EV %q: %s %.3f kWh is above the battery capacity %.3f kWh; lower it or raise capacity_kwh", ErrInvalidProblem, name, f.what, f.v, ev.Capacity)
		}
	}
	if ev.SOCArrive < ev.SOCMin {
		return fmt.Errorf("%w: EV %q: arrives with %.3f kWh, below its own floor %.3f kWh; lower soc_min_kwh to at most the arrival SOC", ErrInvalidProblem, name, ev.SOCArrive, ev.SOCMin)
	}
	w := float64(ev.Depart - ev.Arrive)
	if most := ev.SOCArrive + ev.PMax*w*ev.chargeGain(dt); ev.SOCDepart > most*(1+1e-12) {
		return fmt.Errorf("%w: EV %q: departure need %.3f kWh cannot be met: from %.3f kWh, %d slots at %.3f kW and efficiency %.3f reach at most %.3f kWh; lower the need, widen the window or raise pmax", ErrInvalidProblem, name, ev.SOCDepart, ev.SOCArrive, ev.Depart-ev.Arrive, ev.PMax, ev.Efficiency, most)
	}
	return nil
}

// tube is a battery vehicle's local set over its plug-in window, in the
// coordinates of the projection: per slot k (0 <= k < n) charge c_k in
// [0, pch] and discharge d_k in [0, pdis], and the cumulative energy
// E_k = sum_{s<=k} (a c_s - b d_s), the SOC change since arrival, within
// [lo_k, hi_k]. The bounds are tightened so that every point of the tube
// can be reached from E = 0 and extended to departure.
type tube struct {
	n         int
	a, b      float64
	pch, pdis float64
	lo, hi    []float64
	bp        []float64 // scratch: breakpoints of a segment's response

	// The last sweep's segments, the warm start of the next projection:
	// segment k ends at slot segEnd[k] on its upper bound (segUp) or its
	// lower one, with multiplier segLam[k]; the last segment may end on
	// neither, with multiplier 0 (segFree).
	segEnd  []int
	segUp   []bool
	segLam  []float64
	segFree bool
}

func newTube(ev *EV, dt float64) *tube {
	n := ev.Depart - ev.Arrive
	tb := &tube{n: n, a: ev.chargeGain(dt), b: ev.dischargeLoss(dt), pch: ev.PMax, pdis: ev.PDis,
		lo: make([]float64, n), hi: make([]float64, n), bp: make([]float64, 0, 4*n)}
	up, down := tb.a*tb.pch, tb.b*tb.pdis
	for k := 0; k < n; k++ {
		tb.lo[k] = ev.SOCMin - ev.SOCArrive
		tb.hi[k] = ev.Capacity - ev.SOCArrive
	}
	tb.lo[n-1] = max(ev.SOCMin, ev.SOCDepart) - ev.SOCArrive
	// Reachable from the start ...
	plo, phi := 0.0, 0.0
	for k := 0; k < n; k++ {
		tb.hi[k] = min(tb.hi[k], phi+up)
		tb.lo[k] = max(tb.lo[k], plo-down)
		plo, phi = tb.lo[k], tb.hi[k]
	}
	// ... and extendable to departure.
	for k := n - 2; k >= 0; k-- {
		tb.hi[k] = min(tb.hi[k], tb.hi[k+1]+down)
		tb.lo[k] = max(tb.lo[k], tb.lo[k+1]-up)
	}
	return tb
}

// tol is the accuracy to which cumulative energies are matched, kWh.
func (tb *tube) tol() float64 { return 1e-12 * (tb.a*tb.pch + tb.b*tb.pdis) * float64(tb.n) }

// response is slot k's charge and discharge at tube multiplier lam.
func (tb *tube) response(yc, yd, lam float64) (c, d float64) {
	return min(max(yc-tb.a*lam, 0), tb.pch), min(max(yd+tb.b*lam, 0), tb.pdis)
}

// energy is F(lam) = sum_{k=i..j} (a c_k(lam) - b d_k(lam)), non-increasing
// in lam.
func (tb *tube) energy(yc, yd []float64, i, j int, lam float64) float64 {
	s := 0.0
	for k := i; k <= j; k++ {
		c, d := tb.response(yc[k], yd[k], lam)
		s += tb.a*c - tb.b*d
	}
	return s
}

// rootUpper is the smallest lam with F(lam) <= r on slots i..j (-Inf if F
// never exceeds r); rootLower the largest lam with F(lam) >= r (+Inf if F
// never drops below r). Both search only [lo, hi], where the caller knows
// the answer lies (-Inf and +Inf for no knowledge), and return lo or hi if
// F stays on one side of r there: the sweep needs min(root, lamHi) and
// max(root, lamLo) anyway (with infinite lo and hi this is the -Inf and
// +Inf above: F is constant beyond its breakpoints). F is piecewise linear between its breakpoints,
// so both are exact up to rounding (bracket below).
func (tb *tube) rootUpper(yc, yd []float64, i, j int, r, lo, hi, guess float64) float64 {
	return tb.bracket(yc, yd, i, j, r, lo, hi, guess, true)
}

func (tb *tube) rootLower(yc, yd []float64, i, j int, r, lo, hi, guess float64) float64 {
	return tb.bracket(yc, yd, i, j, r, lo, hi, guess, false)
}

// span is the range of F's breakpoints on slots i..j: F is constant below
// the first and above the last.
func (tb *tube) span(yc, yd []float64, i, j int) (lo, hi float64) {
	lo, hi = math.Inf(1), math.Inf(-1)
	for k := i; k <= j; k++ {
		lo, hi = min(lo, (yc[k]-tb.pch)/tb.a), max(hi, yc[k]/tb.a)
		if tb.pdis > 0 {
			lo, hi = min(lo, -yd[k]/tb.b), max(hi, (tb.pdis-yd[k])/tb.b)
		}
	}
	return lo, hi
}

// bracket finds the root of F = r in [lo, hi] without sorting F's
// breakpoints: it keeps a bracket l < h with F(l) on the far side of r
// (above it, or at or above it for the lower root) and F(h) on the near
// side, shrinks it by Newton steps taken from the side the last evaluation
// landed on while they stay inside, and otherwise by the median of the
// breakpoints still inside (a linear-time selection, so each such step
// halves them). When no breakpoint is left inside, F is linear on [l, h]
// and the root is one division. upper picks the smallest lam with F <= r,
// else the largest with F >= r. Each step is one pass over the slots and
// at most log2(4(j-i+1)) median steps are needed, so a root costs
// O(T log T) at worst and a few passes in the common case.
func (tb *tube) bracket(yc, yd []float64, i, j int, r, lo, hi, guess float64, upper bool) float64 {
	blo, bhi := tb.span(yc, yd, i, j)
	// far(f): F at that point is on the low-lam side of the answer.
	far := func(f float64) bool {
		if upper {
			return f > r
		}
		return f >= r
	}
	l, h := max(lo, blo), min(hi, bhi)
	if l > h { // [lo, hi] lies where F is constant
		l, h = lo, hi
	}
	fl, sl := tb.eval(yc, yd, i, j, l)
	if !far(fl) {
		return lo // F is already on the near side at lo
	}
	fh, _ := tb.eval(yc, yd, i, j, h)
	if far(fh) {
		return hi
	}
	nb := 4 // kinks per slot
	if tb.pdis == 0 {
		nb = 2 // d is 0 at every lam
	}
	lam, f, slope := l, fl, sl
	if guess > l && guess < h {
		// Newton from the caller's guess (the last projection's
		// multiplier), which is usually on the root's piece already.
		lam = guess
		f, slope = tb.eval(yc, yd, i, j, lam)
		if slope > 0 && math.Abs(f-r) <= tb.tol() {
			return lam
		}
		if far(f) {
			l, fl = lam, f
		} else {
			h, fh = lam, f
		}
	}
	for it := 0; ; it++ {
		next := math.NaN()
		if it < 8 && slope > 0 {
			next = lam + (f-r)/slope
		}
		if !(next > l && next < h) {
			// Median of the breakpoints inside (l, h); none: F is linear.
			bp := tb.bp[:0]
			for k := i; k <= j; k++ {
				kinks := [4]float64{(yc[k] - tb.pch) / tb.a, yc[k] / tb.a, -yd[k] / tb.b, (tb.pdis - yd[k]) / tb.b}
				for _, v := range kinks[:nb] {
					if v > l && v < h {
						bp = append(bp, v)
					}
				}
			}
			tb.bp = bp
			if len(bp) == 0 {
				return min(max(l+(fl-r)*(h-l)/(fl-fh), l), h)
			}
			next = selectNth(bp, len(bp)/2)
		}
		lam = next
		f, slope = tb.eval(yc, yd, i, j, lam)
		if slope > 0 && math.Abs(f-r) <= tb.tol() {
			return lam // on a sloped piece: the root, to rounding
		}
		if far(f) {
			l, fl = lam, f
		} else {
			h, fh = lam, f
		}
	}
}

// eval is F(lam) on slots i..j and its slope magnitude (the sum over free
// charges of a^2 and free discharges of b^2).
func (tb *tube) eval(yc, yd []float64, i, j int, lam float64) (f, slope float64) {
	for k := i; k <= j; k++ {
		cc, dd := tb.response(yc[k], yd[k], lam)
		f += tb.a*cc - tb.b*dd
		if cc > 0 && cc < tb.pch {
			slope += tb.a * tb.a
		}
		if dd > 0 && dd < tb.pdis {
			slope += tb.b * tb.b
		}
	}
	return f, slope
}

// selectNth reorders v so that v[k] is the value a sort would put there,
// and returns it (Hoare's selection with a median-of-three pivot; linear
// time on average, no allocation).
func selectNth(v []float64, k int) float64 {
	l, h := 0, len(v)-1
	for l < h {
		m := l + (h-l)/2
		if v[m] < v[l] {
			v[m], v[l] = v[l], v[m]
		}
		if v[h] < v[l] {
			v[h], v[l] = v[l], v[h]
		}
		if v[h] < v[m] {
			v[h], v[m] = v[m], v[h]
		}
		p := v[m]
		a, b := l, h
		for a <= b {
			for v[a] < p {
				a++
			}
			for v[b] > p {
				b--
			}
			if a <= b {
				v[a], v[b] = v[b], v[a]
				a++
				b--
			}
		}
		switch {
		case k <= b:
			h = b
		case k >= a:
			l = a
		default:
			return v[k]
		}
	}
	return v[k]
}

// project sets (c, d) to the Euclidean projection of (yc, yd) onto the tube
// and returns the multiplier of the first segment (a warm start for the
// next call; NaN means none). The KKT conditions of the projection are
//
//	c_k = clip(yc_k - a L_k, 0, pch),  d_k = clip(yd_k + b L_k, 0, pdis),
//
// where L_k is the sum of the tube multipliers of slots k and later (upper
// bounds counted positive, lower bounds negative): L is piecewise constant,
// steps down after a slot where the upper bound binds and up after one
// where the lower bound binds, and is 0 past departure. project finds L by
// the taut-string sweep: from the start of a segment it extends the
// segment while one constant L can keep every cumulative bound so far, and
// ends it at the bound that forces the break. Before that it tries the
// common case, one segment whose only active bound is the departure one,
// which costs one pass if the hint is still right. No generic QP solver is
// involved; TestProjectTube checks it against KKT, the variational
// inequality and Dykstra's alternating projections.
func (tb *tube) project(yc, yd, c, d []float64, hint float64) float64 {
	n := tb.n
	tol := tb.tol()
	// One segment: L constant, fixed by the departure bounds.
	lam := hint
	if math.IsNaN(lam) || math.IsInf(lam, 0) || !tb.departOK(yc, yd, lam, tol) {
		lam = tb.departLam(yc, yd, hint)
	}
	if tb.fill(yc, yd, c, d, 0, n-1, lam, 0, tol) {
		return lam
	}
	if len(tb.segEnd) > 1 && tb.warm(yc, yd, c, d, tol) {
		return tb.segLam[0]
	}
	tb.segEnd, tb.segUp, tb.segLam, tb.segFree = tb.segEnd[:0], tb.segUp[:0], tb.segLam[:0], false
	first := math.NaN()
	s0, e0 := 0, 0.0
	for s0 < n {
		lamLo, lamHi := math.Inf(-1), math.Inf(1)
		argLo, argHi := -1, -1
		end, up := -1, false
		// fLo, fHi: F over s0..t at lamLo and lamHi, kept as running sums
		// and recomputed only when the multiplier they belong to moves.
		fLo, fHi := 0.0, 0.0
		for t := s0; t < n; t++ {
			rU, rL := tb.hi[t]-e0, tb.lo[t]-e0
			cl, dl := tb.response(yc[t], yd[t], lamLo)
			ch, dh := tb.response(yc[t], yd[t], lamHi)
			fLo += tb.a*cl - tb.b*dl
			fHi += tb.a*ch - tb.b*dh
			if argHi >= 0 && fHi > rU+tol {
				// The upper bound at t needs a larger L than the lower bound
				// at argHi allows: the segment ends there, on its floor.
				end, lam = argHi, lamHi
				break
			}
			if argLo >= 0 && fLo < rL-tol {
				end, lam, up = argLo, lamLo, true
				break
			}
			if fLo > rU {
				lamLo, argLo = tb.rootUpper(yc, yd, s0, t, rU, lamLo, lamHi, math.NaN()), t
				fLo = tb.energy(yc, yd, s0, t, lamLo)
			}
			if fHi < rL {
				lamHi, argHi = tb.rootLower(yc, yd, s0, t, rL, lamLo, lamHi, math.NaN()), t
				fHi = tb.energy(yc, yd, s0, t, lamHi)
			}
		}
		if end < 0 {
			// No break before departure: L is 0 past it, so the last
			// segment takes the admissible L closest to 0.
			switch {
			case lamLo > 0:
				end, lam, up = argLo, lamLo, true
			case lamHi < 0:
				end, lam = argHi, lamHi
			default:
				end, lam = n-1, 0
				tb.segFree = true
			}
		}
		tb.segEnd, tb.segUp, tb.segLam = append(tb.segEnd, end), append(tb.segUp, up), append(tb.segLam, lam)
		if math.IsNaN(first) {
			first = lam
		}
		e0 += tb.fillSegment(yc, yd, c, d, s0, end, lam)
		s0 = end + 1
	}
	return first
}

// warm tries the last sweep's segments on the new point: each segment's
// multiplier is re-solved on its end bound (Newton from the old one), and
// the answer is kept only if it meets every KKT condition - all bounds
// within the segments, each bound's multiplier >= 0 (L steps down after an
// upper bound, up after a lower one, and the last segment's L has the
// sign of its bound) - which makes it the exact projection. In late
// iterations the active bounds stop changing, and this costs a few passes
// instead of a sweep.
func (tb *tube) warm(yc, yd, c, d []float64, tol float64) bool {
	s0, e0 := 0, 0.0
	last := len(tb.segEnd) - 1
	for k, end := range tb.segEnd {
		lam := 0.0
		if !(k == last && tb.segFree) {
			r := tb.lo[end] - e0
			if tb.segUp[k] {
				r = tb.hi[end] - e0
			}
			var ok bool
			if lam, ok = tb.newton(yc, yd, s0, end, r, tb.segLam[k], tol); !ok {
				return false
			}
		}
		if !tb.fill(yc, yd, c, d, s0, end, lam, e0, tol) {
			return false
		}
		if k > 0 {
			// the multiplier of the previous segment's end bound
			if step := tb.segLam[k-1] - lam; tb.segUp[k-1] && step < 0 || !tb.segUp[k-1] && step > 0 {
				return false
			}
		}
		tb.segLam[k] = lam
		e0 += tb.fillSegment(yc, yd, c, d, s0, end, lam)
		s0 = end + 1
	}
	if s0 != tb.n {
		return false
	}
	l := tb.segLam[last]
	return tb.segFree || tb.segUp[last] && l >= 0 || !tb.segUp[last] && l <= 0
}

// newton solves F(lam) = r on slots i..j from guess: F is piecewise
// linear, so Newton lands on the root once it is on the right piece. ok is
// false if it does not within a few steps (the caller then sweeps, or
// sorts the breakpoints). On a flat stretch of F any root gives the same
// charge and discharge, since every slot is clipped there.
func (tb *tube) newton(yc, yd []float64, i, j int, r, guess, tol float64) (float64, bool) {
	lam := guess
	if math.IsNaN(lam) || math.IsInf(lam, 0) {
		return 0, false
	}
	for it := 0; it < 8; it++ {
		f, slope := 0.0, 0.0
		for k := i; k <= j; k++ {
			cc, dd := tb.response(yc[k], yd[k], lam)
			f += tb.a*cc - tb.b*dd
			if cc > 0 && cc < tb.pch {
				slope += tb.a * tb.a
			}
			if dd > 0 && dd < tb.pdis {
				slope += tb.b * tb.b
			}
		}
		if math.Abs(f-r) <= tol {
			return lam, true
		}
		if slope == 0 {
			return 0, false
		}
		lam += (f - r) / slope
	}
	return 0, false
}

// departLam is the L of a single segment: 0 if the departure bounds hold
// at 0, else the root on the bound that is violated, searched from guess
// (the last step's multiplier; NaN: none).
func (tb *tube) departLam(yc, yd []float64, guess float64) float64 {
	if math.IsNaN(guess) || math.IsInf(guess, 0) {
		guess = 0
	}
	n := tb.n
	f := tb.energy(yc, yd, 0, n-1, 0)
	switch {
	case f > tb.hi[n-1]:
		return tb.rootUpper(yc, yd, 0, n-1, tb.hi[n-1], math.Inf(-1), math.Inf(1), guess)
	case f < tb.lo[n-1]:
		return tb.rootLower(yc, yd, 0, n-1, tb.lo[n-1], math.Inf(-1), math.Inf(1), guess)
	}
	return 0
}

// departOK reports whether a single segment at lam satisfies the departure
// bounds with the complementary slackness of L = lam.
func (tb *tube) departOK(yc, yd []float64, lam, tol float64) bool {
	n := tb.n
	f := tb.energy(yc, yd, 0, n-1, lam)
	switch {
	case lam > 0:
		return math.Abs(f-tb.hi[n-1]) <= tol
	case lam < 0:
		return math.Abs(f-tb.lo[n-1]) <= tol
	}
	return f >= tb.lo[n-1]-tol && f <= tb.hi[n-1]+tol
}

// fill writes slots i..j at multiplier lam starting from cumulative e0 and
// reports whether every cumulative bound on the way holds within tol.
func (tb *tube) fill(yc, yd, c, d []float64, i, j int, lam, e0, tol float64) bool {
	e := e0
	for k := i; k <= j; k++ {
		c[k], d[k] = tb.response(yc[k], yd[k], lam)
		e += tb.a*c[k] - tb.b*d[k]
		if e > tb.hi[k]+tol || e < tb.lo[k]-tol {
			return false
		}
	}
	return true
}

// fillSegment writes slots i..j at multiplier lam and returns their energy.
func (tb *tube) fillSegment(yc, yd, c, d []float64, i, j int, lam float64) float64 {
	e := 0.0
	for k := i; k <= j; k++ {
		c[k], d[k] = tb.response(yc[k], yd[k], lam)
		e += tb.a*c[k] - tb.b*d[k]
	}
	return e
}

// batteryBound is min over the vehicle's set of sum_t (g(t) (c - d) +
// kappa (c + d)) with g = lambda + price: the vehicle's term of the
// Lagrangian bound. It is a linear programme, solved exactly by dynamic
// programming on the SOC: V_k(E), the cheapest cost of reaching cumulative
// energy E after slot k, is convex and piecewise linear; one slot's
// cheapest cost as a function of its energy is too (two pieces: charging at
// slope (g+kappa)/a, giving up discharge at slope (g-kappa)/b), so V_k is
// the infimal convolution of V_{k-1} and that slot's cost - its pieces
// merged in slope order - cut to the slot's SOC bounds. It shares no code
// with the projection (the bounds are recomputed from the vehicle's fields,
// untightened). ok is false if the set is empty.
func batteryBound(ev *EV, dt float64, g []float64) (q float64, ok bool) {
	a, b := ev.chargeGain(dt), ev.dischargeLoss(dt)
	kappa := ev.Degradation
	type piece struct{ slope, length float64 }
	var pieces []piece // sorted by slope
	x0, f0 := 0.0, 0.0 // left end of V's domain and V there
	insert := func(p piece) {
		if p.length <= 0 {
			return
		}
		k := sort.Search(len(pieces), func(m int) bool { return pieces[m].slope > p.slope })
		pieces = append(pieces, piece{})
		copy(pieces[k+1:], pieces[k:])
		pieces[k] = p
	}
	for t := ev.Arrive; t < ev.Depart; t++ {
		// The slot starts at full discharge: c = 0, d = pdis.
		x0 -= b * ev.PDis
		f0 += (kappa - g[t]) * ev.PDis
		insert(piece{(g[t] + kappa) / a, a * ev.PMax})
		insert(piece{(g[t] - kappa) / b, b * ev.PDis})
		lo := ev.SOCMin - ev.SOCArrive
		if t == ev.Depart-1 {
			lo = max(ev.SOCMin, ev.SOCDepart) - ev.SOCArrive
		}
		hi := ev.Capacity - ev.SOCArrive
		// Cut the left end up to lo.
		for x0 < lo && len(pieces) > 0 {
			take := min(pieces[0].length, lo-x0)
			f0 += take * pieces[0].slope
			x0 += take
			pieces[0].length -= take
			if pieces[0].length <= 0 {
				pieces = pieces[1:]
			}
		}
		if x0 < lo-1e-9*(1+math.Abs(lo)) || x0 > hi+1e-9*(1+math.Abs(hi)) {
			return math.NaN(), false
		}
		x0 = max(x0, lo)
		// Cut the right end down to hi.
		end := x0
		for k := range pieces {
			if end+pieces[k].length > hi {
				pieces[k].length = max(hi-end, 0)
				pieces = pieces[:k+1]
				break
			}
			end += pieces[k].length
		}
	}
	q = f0
	for _, p := range pieces {
		if p.slope >= 0 {
			break
		}
		q += p.slope * p.length
	}
	return q, true
}
