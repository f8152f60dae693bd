package home

import (
	"fmt"
	"math"
	"math/rand/v2"
	"sort"
)

// Attacker is a non-intrusive load monitoring (NILM) adversary who sees
// only a home's meter series and tries to tell, slot by slot, which
// appliances were on. It is trained, as NILM attackers are, on labelled
// data from other homes: households drawn by the same generator (so it
// knows the appliance kinds, their powers and the habits' distribution,
// but not this household's draws). It runs two classic detectors and a
// guess from habits alone, and the strongest counts:
//
//   - combinatorial optimisation (CO; Hart 1992, as in NILMTK): each
//     slot's meter reading minus the learned standby load is explained by
//     the combination of appliance states (off or one of up to two learned
//     on-levels per kind) whose total is nearest;
//   - edge detection: a rise of the meter between slots that matches a
//     learned on-level of one kind within 35 % marks that kind on until
//     the meter falls back below half the rise, for at most the kind's
//     learned longest run. Unlike CO it ignores a constant offset, such as
//     a battery charging at constant power;
//   - the prior: each kind on when its learned time-of-day prior says
//     "on" is more likely, whatever the meter shows. It is the floor no
//     meter can push the attack below, and it is what an attacker
//     facing a perfectly constant meter still scores.
//
// Both detectors also weigh candidates by the learned time-of-day priors
// (a MAP rather than a pure nearest-sum choice), which is what a trained
// attacker would do.
type Attacker struct {
	SlotMin   int
	StandbyKW float64             // learned mean standby load
	States    [NumKinds][]float64 // learned on-levels (slot-average kW), ascending
	MaxRun    [NumKinds]int       // learned longest run in slots (95th percentile)
	sums      []float64           // every state combination's total, ascending
	codes     []uint32            // the combination of each total, mixed radix
	radix     [NumKinds]uint32    // states per kind including off
	minRise   float64             // smallest rise the edge detector considers, kW
	SigmaKW   float64             // CO's residual scale, kW
	// logPrior[k][t*radix[k]+s]: log P(kind k in state s at slot t),
	// learned from the training homes (time-of-day habits).
	logPrior [NumKinds][]float64
}

// TrainAttacker draws homes training households (one day each) from rng and
// learns the attacker's appliance states. slotMin must divide a day.
func TrainAttacker(rng *rand.Rand, slotMin, homes int) (*Attacker, error) {
	if slotMin < 1 || MinutesPerDay%slotMin != 0 {
		return nil, fmt.Errorf("%w: slot length %d min must divide a day (1440 min)", ErrInvalid, slotMin)
	}
	if homes < 1 {
		return nil, fmt.Errorf("%w: the attacker needs at least one training home, got %d", ErrInvalid, homes)
	}
	a := &Attacker{SlotMin: slotMin}
	var levels [NumKinds][]float64
	var runs [NumKinds][]int
	T := MinutesPerDay / slotMin
	type sample struct {
		kw []float64
		on []bool
	}
	var seen [NumKinds][]sample
	for range homes {
		h := NewHousehold(rng)
		d := NewDay(rng, h)
		a.StandbyKW += h.StandbyKW / float64(homes)
		for i, ap := range h.Appliances {
			kw := d.SlotKW(i, slotMin)
			truth := d.Truth(i, slotMin)
			seen[ap.Kind] = append(seen[ap.Kind], sample{kw, truth})
			run := 0
			for t, on := range truth {
				if on {
					levels[ap.Kind] = append(levels[ap.Kind], kw[t])
					run++
				}
				if (!on || t == len(truth)-1) && run > 0 {
					runs[ap.Kind] = append(runs[ap.Kind], run)
					run = 0
				}
			}
		}
	}
	a.minRise = math.Inf(1)
	for k := range NumKinds {
		a.States[k] = kmeans2(levels[k])
		a.MaxRun[k] = 1
		if r := runs[k]; len(r) > 0 {
			sort.Ints(r)
			a.MaxRun[k] = r[min(len(r)-1, int(0.95*float64(len(r))))]
		}
		if len(a.States[k]) > 0 {
			a.minRise = math.Min(a.minRise, 0.65*a.States[k][0])
		}
	}
	a.combinations()
	a.SigmaKW = 0.15
	// Priors: per kind and slot, the share of training homes (all of them,
	// owners or not) in each state, smoothed over +-2 slots with a
	// Laplace count.
	for k := range NumKinds {
		r := int(a.radix[k])
		cnt := make([]float64, T*r)
		for _, smp := range seen[k] {
			for t, on := range smp.on {
				st := 0
				if on {
					st = 1 + nearest(a.States[k], smp.kw[t])
				}
				cnt[t*r+st]++
			}
		}
		a.logPrior[k] = make([]float64, T*r)
		for t := range T {
			tot := 0.0
			var c [3]float64
			for dt := -2; dt <= 2; dt++ {
				u := ((t+dt)%T + T) % T
				for st := range r {
					c[st] += cnt[u*r+st]
				}
			}
			c[0] += float64(homes-len(seen[k])) * 5 // non-owners are off
			for st := range r {
				c[st]++
				tot += c[st]
			}
			for st := range r {
				a.logPrior[k][t*r+st] = math.Log(c[st] / tot)
			}
		}
	}
	return a, nil
}

func nearest(states []float64, v float64) int {
	best := 0
	for j, s := range states {
		if math.Abs(v-s) < math.Abs(v-states[best]) {
			best = j
		}
	}
	return best
}

// kmeans2 clusters positive levels into one or two on-levels: Lloyd's
// algorithm from the quartiles, keeping two only if each holds at least
// 15 % of the points and they differ by a factor of 1.6.
func kmeans2(x []float64) []float64 {
	if len(x) == 0 {
		return nil
	}
	s := append([]float64(nil), x...)
	sort.Float64s(s)
	mean := 0.0
	for _, v := range s {
		mean += v
	}
	mean /= float64(len(s))
	c := [2]float64{s[len(s)/4], s[3*len(s)/4]}
	var n [2]int
	for range 50 {
		var sum [2]float64
		n = [2]int{}
		for _, v := range s {
			j := 0
			if math.Abs(v-c[1]) < math.Abs(v-c[0]) {
				j = 1
			}
			sum[j] += v
			n[j]++
		}
		for j := range 2 {
			if n[j] > 0 {
				c[j] = sum[j] / float64(n[j])
			}
		}
	}
	if n[0] < len(s)*15/100 || n[1] < len(s)*15/100 || c[1] < 1.6*c[0] {
		return []float64{mean}
	}
	return []float64{c[0], c[1]}
}

// combinations lists every combination of states with its total.
func (a *Attacker) combinations() {
	total := uint32(1)
	for k := range NumKinds {
		a.radix[k] = uint32(1 + len(a.States[k]))
		total *= a.radix[k]
	}
	type combo struct {
		sum  float64
		code uint32
	}
	cs := make([]combo, total)
	for code := range total {
		c, sum := code, 0.0
		for k := range NumKinds {
			if st := c % a.radix[k]; st > 0 {
				sum += a.States[k][st-1]
			}
			c /= a.radix[k]
		}
		cs[code] = combo{sum, code}
	}
	sort.SliceStable(cs, func(i, j int) bool { return cs[i].sum < cs[j].sum })
	a.sums = make([]float64, total)
	a.codes = make([]uint32, total)
	for i, c := range cs {
		a.sums[i], a.codes[i] = c.sum, c.code
	}
}

// Detection is an attacker's verdict: per kind, per slot, on or off.
type Detection [NumKinds][]bool

func newDetection(T int) Detection {
	var d Detection
	for k := range d {
		d[k] = make([]bool, T)
	}
	return d
}

// CO runs combinatorial optimisation on a meter series: in each slot, the
// combination of states that maximises the posterior under a Gaussian
// residual of scale SigmaKW and the learned time-of-day priors, among the
// combinations whose total lies within 4 SigmaKW of the reading (the
// nearest combination if none does).
func (a *Attacker) CO(meter []float64) Detection {
	det := newDetection(len(meter))
	T := len(a.logPrior[0]) / int(a.radix[0])
	for t, m := range meter {
		x := m - a.StandbyKW
		tt := t % T
		lo := sort.SearchFloat64s(a.sums, x-4*a.SigmaKW)
		best, bestV := -1, math.Inf(1)
		for i := lo; i < len(a.sums) && a.sums[i] <= x+4*a.SigmaKW; i++ {
			r := (x - a.sums[i]) / a.SigmaKW
			v := r * r / 2
			c := a.codes[i]
			for k := range NumKinds {
				rk := a.radix[k]
				v -= a.logPrior[k][tt*int(rk)+int(c%rk)]
				c /= rk
			}
			if v < bestV {
				best, bestV = i, v
			}
		}
		if best < 0 {
			best = sort.SearchFloat64s(a.sums, x)
			if best == len(a.sums) || (best > 0 && x-a.sums[best-1] <= a.sums[best]-x) {
				best--
			}
		}
		c := a.codes[best]
		for k := range NumKinds {
			det[k][t] = c%a.radix[k] > 0
			c /= a.radix[k]
		}
	}
	return det
}

// Prior is what the attacker says without a meter: each kind on in the
// slots where its learned prior makes "on" more likely than "off". Its F1
// is the floor that hiding the meter cannot push the attack below.
func (a *Attacker) Prior(T int) Detection {
	det := newDetection(T)
	P := len(a.logPrior[0]) / int(a.radix[0])
	for k := range NumKinds {
		r := int(a.radix[k])
		for t := range T {
			on := 0.0
			for st := 1; st < r; st++ {
				on += math.Exp(a.logPrior[k][(t%P)*r+st])
			}
			det[k][t] = on > 0.5
		}
	}
	return det
}

// Edges runs the edge detector on a meter series.
func (a *Attacker) Edges(meter []float64) Detection {
	det := newDetection(len(meter))
	P := len(a.logPrior[0]) / int(a.radix[0])
	for t := 1; t < len(meter); t++ {
		rise := meter[t] - meter[t-1]
		if rise < a.minRise {
			continue
		}
		best, bestV := -1, math.Inf(1)
		tt := t % P
		for k := range NumKinds {
			r := int(a.radix[k])
			for j, s := range a.States[k] {
				e := math.Abs(rise-s) / s
				if e > 0.35 {
					continue
				}
				if v := e*e/(2*0.15*0.15) - a.logPrior[k][tt*r+1+j]; v < bestV {
					best, bestV = k, v
				}
			}
		}
		if best < 0 {
			continue
		}
		floor := meter[t-1] + rise/2
		for u := t; u < len(meter) && u < t+a.MaxRun[best] && meter[u] >= floor; u++ {
			det[best][u] = true
		}
	}
	return det
}

// Detections runs the three attacks that Evaluate scores on one meter
// series: combinatorial optimisation, edge detection and the habits-only
// prior (for the meter's length). It is what a third party needs, with the
// ground truth, to recompute the attacker's F1.
func (a *Attacker) Detections(meter []float64) (co, edge, prior Detection) {
	return a.CO(meter), a.Edges(meter), a.Prior(len(meter))
}

// Score is an attack's result against the ground truth.
type Score struct {
	F1     float64            // macro F1 over scored kinds that were on or detected; 0 if none
	ByKind map[string]float64 // F1 per scored kind counted in the macro average
	Kinds  int                // how many kinds the macro averages
}

// F1 scores a detection against the truth (per kind, per slot; a nil or
// empty row means the kind was never on). Kinds neither on nor detected are
// left out; a kind detected but never on scores 0.
func F1(det Detection, truth [NumKinds][]bool) Score {
	s := Score{ByKind: map[string]float64{}}
	sum := 0.0
	for k := range NumKinds {
		if !Kind(k).Scored() {
			continue
		}
		var tp, fp, fn int
		for t, d := range det[k] {
			on := t < len(truth[k]) && truth[k][t]
			switch {
			case d && on:
				tp++
			case d:
				fp++
			case on:
				fn++
			}
		}
		if tp+fp+fn == 0 {
			continue
		}
		f := 2 * float64(tp) / float64(2*tp+fp+fn)
		s.ByKind[Kind(k).String()] = f
		sum += f
		s.Kinds++
	}
	if s.Kinds > 0 {
		s.F1 = sum / float64(s.Kinds)
	}
	return s
}
