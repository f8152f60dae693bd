package home

import (
	"fmt"
	"math"
	"sort"
)

// DefaultLevels is the optimal scheduler's default number of SOC grid
// levels between SOCMin and SOCMax.
const DefaultLevels = 201

// MaxLevels bounds the SOC grid. Memory grows as slots x levels x band
// (the levels one slot can reach, itself proportional to levels): about
// 3.5 MB at 201 levels, 0.3 GB at 2001 for a day of 96 slots and a 7.4 kW
// charger on 60 kWh.
const MaxLevels = 2001

// gridEps absorbs rounding when a continuous bound is turned into a grid
// index: a level within gridEps steps of a bound counts as inside it.
const gridEps = 1e-9

// Optimal is the exact dynamic programme of docs/ARCHITECTURE.md C4 on a discretised
// SOC grid; see the package documentation for what "exact on the grid"
// means and how the squared meter differences are handled.
type Optimal struct {
	Levels int // SOC grid levels from SOCMin to SOCMax inclusive; 0 means DefaultLevels
}

// Name implements Scheduler.
func (Optimal) Name() string { return "optimal" }

// dp holds one solve's grid and tables. Slot t's transitions go from
// boundary t's state set (boundary 0: the single initial SOC; later
// boundaries: the K grid levels) to boundary t+1's; each from-state a has a
// contiguous range [rlo, rhi] of to-levels.
type dp struct {
	p            *Problem
	T, K         int
	lo, h, rho   float64
	upMax, dnMax float64 // largest SOC rise and fall in one home slot
	w            float64 // (1 - alpha) * beta
	dep, ret     int     // trip slots, -1 without a trip
	allow        []int   // per boundary: lowest admissible level index
	phi          []int   // return map: level at departure -> level at return (-1: infeasible)
	rlo, rhi     []int32 // [t*K + a]
	off          []int   // [t*K + a]: start of (t, a)'s band in val and choice
	val          []float64
	choice       []int32
}

func (d *dp) level(k int) float64 { return d.lo + float64(k)*d.h }

// from returns the SOC of from-state a of slot t.
func (d *dp) from(t, a int) float64 {
	if t == 0 {
		return d.p.SOC0
	}
	return d.level(a)
}

func (d *dp) nFrom(t int) int {
	if t == 0 {
		return 1
	}
	return d.K
}

// power returns the battery power (P_ch - P_dis, kW) that takes the SOC
// from x to y over one home slot.
func (d *dp) power(x, y float64) float64 {
	b := &d.p.Battery
	delta := y - x*d.rho
	if delta >= 0 {
		return delta * b.CapacityKWh / (b.EtaCharge * d.p.DT)
	}
	return delta * b.EtaDischarge * b.CapacityKWh / d.p.DT
}

// meter returns P_meter in slot t for the transition a -> c.
func (d *dp) meter(t, a, c int) float64 {
	if !d.p.Home(t) {
		return d.p.Load[t]
	}
	return d.p.Load[t] + d.power(d.from(t, a), d.level(c))
}

// Schedule implements Scheduler. It returns an error wrapping ErrInvalid
// for a bad problem and ErrInfeasible when no grid schedule meets the
// constraints.
func (o Optimal) Schedule(p *Problem) (*Schedule, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	d, err := newDP(p, o.Levels)
	if err != nil {
		return nil, err
	}
	d.ranges()
	d.backward()
	return d.forward()
}

func newDP(p *Problem, levels int) (*dp, error) {
	K := levels
	if K == 0 {
		K = DefaultLevels
	}
	if K < 2 || K > MaxLevels {
		return nil, fmt.Errorf("%w: %d SOC levels; use 2 to %d (default %d)", ErrInvalid, K, MaxLevels, DefaultLevels)
	}
	b := &p.Battery
	T := p.Slots()
	d := &dp{
		p: p, T: T, K: K, lo: b.SOCMin, h: (b.SOCMax - b.SOCMin) / float64(K-1), rho: p.decay(),
		upMax: b.EtaCharge * b.ChargeMaxKW * p.DT / b.CapacityKWh,
		dnMax: b.DischargeMaxKW * p.DT / (b.EtaDischarge * b.CapacityKWh),
		w:     (1 - p.Alpha) * p.Beta, dep: -1, ret: -1,
	}
	if p.Trip != nil {
		d.dep, d.ret = p.Trip.Depart, p.Trip.Return
	}
	// Admissible levels per boundary: the continuous floors are necessary
	// conditions, so pruning below them loses no grid schedule. Boundaries
	// strictly inside the trip carry the departure level's index, not a
	// grid SOC, and are not pruned.
	floor := p.floors()
	d.allow = make([]int, T+1)
	for t := 1; t <= T; t++ {
		if d.dep >= 0 && t > d.dep && t < d.ret {
			continue
		}
		d.allow[t] = max(0, int(math.Ceil((floor[t]-d.lo)/d.h-gridEps)))
	}
	if d.allow[T] > K-1 {
		return nil, fmt.Errorf("%w: end-of-day SOC %v is above the grid's top level", ErrInfeasible, p.SOCEnd)
	}
	if d.dep >= 0 {
		// The return level: the battery equation run slot by slot over the
		// trip, the energy spread evenly (what Problem.Check and docs/HOME.md
		// state), then rounded down to the grid. Debiting the whole trip
		// after n slots of self-discharge, rho^n x - E, subtracts
		// E (1 - sum_{k<n} rho^k / n) too much and lands a level too low
		// whenever the true SOC sits just above a level.
		n := d.ret - d.dep
		e := p.Trip.EnergyKWh() / float64(n) / b.CapacityKWh
		d.phi = make([]int, K)
		for a := range K {
			exact := d.level(a)
			for range n {
				exact = exact*d.rho - e
			}
			c := int(math.Floor((exact-d.lo)/d.h + gridEps))
			if c < d.allow[d.ret] || a < d.allow[d.dep] {
				c = -1
			}
			d.phi[a] = c
		}
	}
	return d, nil
}

// ranges fills the per-slot transition ranges and the band offsets.
func (d *dp) ranges() {
	T, K := d.T, d.K
	d.rlo = make([]int32, T*K)
	d.rhi = make([]int32, T*K)
	d.off = make([]int, T*K+1)
	b := &d.p.Battery
	total := 0
	for t := 0; t < T; t++ {
		for a := 0; a < d.nFrom(t); a++ {
			lo, hi := 0, -1
			switch {
			case d.p.Home(t):
				x := d.from(t, a) * d.rho
				down := d.dnMax
				if !d.p.AllowExport {
					down = math.Min(down, d.p.Load[t]*d.p.DT/(b.EtaDischarge*b.CapacityKWh))
				}
				lo = int(math.Ceil((x-down-d.lo)/d.h - gridEps))
				hi = int(math.Floor((x+d.upMax-d.lo)/d.h + gridEps))
				lo = max(lo, d.allow[t+1], 0)
				hi = min(hi, K-1)
			case t == d.ret-1:
				if c := d.phi[a]; c >= 0 {
					lo, hi = c, c
				}
			default: // inside the trip: the index is carried unchanged
				lo, hi = a, a
			}
			if hi < lo {
				lo, hi = 0, -1
			}
			d.rlo[t*K+a], d.rhi[t*K+a] = int32(lo), int32(hi)
			d.off[t*K+a] = total
			total += hi - lo + 1
		}
		for a := d.nFrom(t); a < K; a++ {
			d.rlo[t*K+a], d.rhi[t*K+a] = 0, -1
			d.off[t*K+a] = total
		}
	}
	d.off[T*K] = total
	d.val = make([]float64, total)
	d.choice = make([]int32, total)
}

// backward fills val[t][a][b], the least cost of slots t..T-1 given slot t
// moves from a to b, and choice, the best next level. The squared term
// couples slots t and t+1; for a fixed b its minimum over the next level c,
//
//	min_c w (y_c - x)^2 + V(b, c) = w x^2 + min_c (-2 w y_c x + w y_c^2 + V(b, c)),
//
// is a lower envelope of lines in x = P_meter(t) with slopes -2 w y_c
// sorted by c (y_c = P_meter(t+1) grows with c). Each envelope is built in
// O(band) and queried by binary search, so a slot costs
// O(K * band * log band) instead of the O(K * band^2) of enumerating c.
func (d *dp) backward() {
	T, K := d.T, d.K
	alpha, dt := d.p.Alpha, d.p.DT
	inf := math.Inf(1)
	// Envelope storage for the K states of the next boundary.
	maxBand := 1
	for i := 0; i < T*K; i++ {
		maxBand = max(maxBand, int(d.rhi[i]-d.rlo[i]+1))
	}
	hullC := make([]int32, K*maxBand)
	hullM := make([]float64, K*maxBand)
	hullQ := make([]float64, K*maxBand)
	hullX := make([]float64, K*maxBand) // breakpoints
	hullN := make([]int, K)
	for t := T - 1; t >= 0; t-- {
		last := t == T-1
		if !last {
			// Envelopes of slot t+1 for every from-level b.
			for bb := 0; bb < K; bb++ {
				base := bb * maxBand
				i := (t+1)*K + bb
				clo, chi := int(d.rlo[i]), int(d.rhi[i])
				n := 0
				for c := clo; c <= chi; c++ {
					v := d.val[d.off[i]+c-clo]
					if v == inf {
						continue
					}
					y := d.meter(t+1, bb, c)
					m, q := -2*d.w*y, d.w*y*y+v
					if n > 0 && hullM[base+n-1] == m {
						if q >= hullQ[base+n-1] {
							continue
						}
						n--
					}
					for n >= 2 && cross(hullM[base+n-2], hullQ[base+n-2], m, q) <= hullX[base+n-2] {
						n--
					}
					hullC[base+n], hullM[base+n], hullQ[base+n] = int32(c), m, q
					if n > 0 {
						hullX[base+n-1] = cross(hullM[base+n-1], hullQ[base+n-1], m, q)
					}
					n++
				}
				hullN[bb] = n
			}
		}
		for a := 0; a < d.nFrom(t); a++ {
			i := t*K + a
			blo, bhi := int(d.rlo[i]), int(d.rhi[i])
			for bb := blo; bb <= bhi; bb++ {
				x := d.meter(t, a, bb)
				k := d.off[i] + bb - blo
				if last {
					d.val[k] = alpha * d.p.Price[t] * x * dt
					d.choice[k] = -1
					continue
				}
				n := hullN[bb]
				if n == 0 {
					d.val[k], d.choice[k] = inf, -1
					continue
				}
				base := bb * maxBand
				j := sort.Search(n-1, func(j int) bool { return hullX[base+j] >= x })
				c := int(hullC[base+j])
				// Evaluate the chosen line directly (no cancellation).
				ni := (t+1)*K + bb
				y := d.meter(t+1, bb, c)
				g := d.w*(y-x)*(y-x) + d.val[d.off[ni]+c-int(d.rlo[ni])]
				d.val[k] = alpha*d.p.Price[t]*x*dt + g
				d.choice[k] = int32(c)
			}
		}
	}
}

// cross returns the x at which lines m1 x + q1 and m2 x + q2 meet (m1 > m2).
func cross(m1, q1, m2, q2 float64) float64 { return (q2 - q1) / (m1 - m2) }

// forward follows the choices from the initial SOC and builds the schedule.
func (d *dp) forward() (*Schedule, error) {
	T, K := d.T, d.K
	p := d.p
	b := &p.Battery
	// Best first move.
	best, bestV := -1, math.Inf(1)
	for bb := int(d.rlo[0]); bb <= int(d.rhi[0]); bb++ {
		if v := d.val[d.off[0]+bb-int(d.rlo[0])]; v < bestV {
			best, bestV = bb, v
		}
	}
	if best < 0 {
		hint := ""
		if d.upMax < d.h {
			hint = fmt.Sprintf(": one step is more than the charger stores in one slot (%.3f kWh), so the battery cannot charge on this grid; use at least %d levels",
				d.upMax*b.CapacityKWh, int(math.Ceil((b.SOCMax-b.SOCMin)/d.upMax))+1)
		}
		return nil, fmt.Errorf("%w: no schedule on the %d-level SOC grid (step %.4f kWh) meets the trip and end-of-day requirements%s; the continuous problem is feasible, so more levels help",
			ErrInfeasible, K, d.h*b.CapacityKWh, hint)
	}
	idx := make([]int, T+1) // idx[t]: state index at boundary t
	idx[0], idx[1] = 0, best
	for t := 0; t+1 < T; t++ {
		i := t*K + idx[t]
		c := d.choice[d.off[i]+idx[t+1]-int(d.rlo[i])]
		if c < 0 {
			return nil, fmt.Errorf("%w: internal error: no continuation at slot %d", ErrInfeasible, t+1)
		}
		idx[t+2] = int(c)
	}
	s := newSchedule("optimal", T)
	s.SOC[0] = p.SOC0
	for t := 0; t < T; t++ {
		if p.Home(t) {
			x := s.SOC[t]
			y := d.level(idx[t+1])
			if u := d.power(x, y); u >= 0 {
				s.Charge[t] = math.Min(u, b.ChargeMaxKW)
			} else {
				s.Discharge[t] = math.Min(-u, b.DischargeMaxKW)
			}
			s.SOC[t+1] = y
		} else if t == d.dep {
			// The whole trip: a constant drive power that lands exactly on
			// the return level (the trip energy plus the grid round-down).
			n := d.ret - d.dep
			x0 := s.SOC[t]
			y := d.level(idx[d.ret])
			drive := (math.Pow(d.rho, float64(n))*x0 - y) * b.CapacityKWh / (p.DT * geomSum(d.rho, n))
			for k := d.dep; k < d.ret; k++ {
				s.Drive[k] = drive
				s.SOC[k+1] = s.SOC[k]*d.rho - drive*p.DT/b.CapacityKWh
			}
			s.SOC[d.ret] = y
		}
		s.Meter[t] = p.Load[t] + s.Charge[t] - s.Discharge[t]
	}
	return s, nil
}
