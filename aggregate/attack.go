package aggregate

import (
	"fmt"
	"math"
	"sort"

	"github.com/gridveil/gridveil/charging"
)

// Adversaries scored by Attack, in the order files list them.
var Adversaries = []string{"so", "so_history", "eavesdropper", "ev", "evs_colluding", "so_with_evs"}

// Scores holds each adversary's RMSE, kW, in recovering the vehicles'
// schedules, next to reference guesses.
type Scores struct {
	RMSE map[string]float64 `json:"rmse_kw"`
	// Prior is the RMSE of the blind guess from public information: every
	// vehicle charges the fleet average, the substation's metered total
	// less the baseline, divided by N.
	Prior float64 `json:"prior_rmse_kw"`
	// BusMean is the RMSE of the guess every exact aggregation hands the
	// SO: each vehicle charges its bus's average s_b(t) / n_b.
	BusMean float64 `json:"bus_mean_rmse_kw"`
}

// Attack runs every adversary's estimator on what that adversary sees in
// the last recorded iteration of m (m must have been made with record on),
// and scores it against the vehicles' true final schedules. Each estimator
// uses only its adversary's view:
//
//   - so, the curious SO: every vehicle's messages in the last iteration,
//     the SO's keys (mu_b for obfuscation), bus sums and the broadcast;
//   - so_history: the same SO averaging each vehicle's messages over the
//     last HistoryWindow iterations, when schedules have nearly settled;
//   - eavesdropper, on one vehicle's link at a time: that vehicle's
//     messages in transit over the last HistoryWindow iterations and public
//     information, no keys;
//   - ev, one curious vehicle: its own schedule and the broadcast aggregate;
//   - evs_colluding, all but one vehicle of a bus against the last: their
//     schedules and the broadcast;
//   - so_with_evs: the SO colluding with all but one vehicle of the bus.
//
// Public information includes the baseline D(t) (a load forecast), which
// makes the vehicles' guesses as strong as they can be.
func Attack(m Mechanism, p *charging.Problem, sol *charging.Solution) (*Scores, error) {
	v := m.View()
	if v == nil {
		return nil, fmt.Errorf("attack on %s: nothing recorded; make the mechanism with record on", m.Name())
	}
	T := p.Slots
	N := float64(len(p.EVs))
	d := p.Baseline()
	a := sol.Aggregate // the broadcast: the SO's view of the aggregate
	// The prior is the same for every mechanism: the fleet's true total
	// (what the substation meter shows) spread evenly.
	fleet := make([]float64, T)
	for _, x := range sol.Schedules {
		for t, v := range x {
			fleet[t] += v / N
		}
	}
	byBus := groups(p)
	busOf := make(map[int][2]int, len(p.EVs))
	for k, evs := range byBus {
		for _, i := range evs {
			busOf[i] = k
		}
	}
	sumOf := func(i int) []float64 {
		k := busOf[i]
		return v.BusSums[busKey(p, charging.Group{Feeder: k[0], Bus: k[1]})]
	}
	truth := sol.Schedules
	scores := &Scores{RMSE: map[string]float64{}}
	var acc [8]rmse
	for i := range p.EVs {
		k := busOf[i]
		mates := byBus[k]
		n := float64(len(mates))
		s := sumOf(i)
		busMean := make([]float64, T)
		for t := range busMean {
			busMean[t] = s[t] / n
		}
		acc[0].add(fleet, truth[i])
		acc[1].add(busMean, truth[i])
		acc[2].add(soEstimate(m, v, p, i, busMean, false), truth[i])
		acc[7].add(soEstimate(m, v, p, i, busMean, true), truth[i])
		acc[3].add(eavesdropEstimate(m, v, p, i, fleet), truth[i])
		// One curious vehicle: the others' average from the broadcast.
		own := truth[mates[0]]
		if mates[0] == i && len(mates) > 1 {
			own = truth[mates[1]]
		}
		guess := make([]float64, T)
		for t := range guess {
			guess[t] = math.Max(0, (a[t]-d[t]-own[t])/(N-1))
		}
		acc[4].add(guess, truth[i])
		// All but one of the bus: what is left of the broadcast, spread over
		// the vehicles outside the coalition.
		outside := N - (n - 1)
		for t := range guess {
			c := 0.0
			for _, j := range mates {
				if j != i {
					c += truth[j][t]
				}
			}
			guess[t] = math.Max(0, (a[t]-d[t]-c)/outside)
		}
		acc[5].add(guess, truth[i])
		// With the SO: the bus sum minus the coalition.
		for t := range guess {
			c := 0.0
			for _, j := range mates {
				if j != i {
					c += truth[j][t]
				}
			}
			guess[t] = s[t] - c
		}
		acc[6].add(guess, truth[i])
	}
	scores.Prior = acc[0].value()
	scores.BusMean = acc[1].value()
	scores.RMSE["so"] = acc[2].value()
	scores.RMSE["so_history"] = acc[7].value()
	scores.RMSE["eavesdropper"] = acc[3].value()
	scores.RMSE["ev"] = acc[4].value()
	scores.RMSE["evs_colluding"] = acc[5].value()
	scores.RMSE["so_with_evs"] = acc[6].value()
	return scores, nil
}

type rmse struct {
	sum float64
	n   int
}

func (r *rmse) add(est, truth []float64) {
	for t := range truth {
		e := est[t] - truth[t]
		r.sum += e * e
		r.n++
	}
}

func (r *rmse) value() float64 {
	if r.n == 0 {
		return math.NaN()
	}
	return math.Sqrt(r.sum / float64(r.n))
}

// soEstimate is the curious SO's estimate of vehicle i's schedule.
// With history it averages the vehicle's messages over the kept iterations.
func soEstimate(m Mechanism, v *View, p *charging.Problem, i int, busMean []float64, history bool) []float64 {
	T := p.Slots
	est := make([]float64, T)
	mean := rowMean(v.Reports[i])
	if history && v.History[i] != nil {
		mean = v.History[i]
	}
	switch mech := m.(type) {
	case *None:
		copy(est, mean)
	case *Obfuscation:
		// It holds the key: average the m values and remove mu_b.
		ev := p.EVs[i]
		mu := mech.Key(ev.Feeder, ev.Bus)
		for t := range est {
			est[t] = mean[t] - mu
		}
	case *DP:
		for t, z := range mean {
			est[t] = math.Min(math.Max(z, 0), p.EVs[i].PMax)
		}
	default:
		// masking: y_i is uniform in Z_2^64 whatever x_i is; shamir: the
		// SO's single share is uniform in GF(P). Neither carries
		// information, so the best guess is what the SO legitimately
		// knows: the bus average.
		copy(est, busMean)
	}
	return est
}

// eavesdropEstimate is the estimate of an eavesdropper on vehicle i's link.
func eavesdropEstimate(m Mechanism, v *View, p *charging.Problem, i int, fleet []float64) []float64 {
	T := p.Slots
	est := make([]float64, T)
	switch mech := m.(type) {
	case *None:
		copy(est, v.Reports[i][0])
	case *Obfuscation:
		// No key, but the protocol is known: in slots where the vehicle
		// does not charge, its values average to mu_b. Average the
		// vehicle's values over the iterations seen, and take the mean of
		// the lowest eighth of the per-slot averages as the key estimate.
		means := v.History[i]
		if means == nil {
			means = rowMean(v.Reports[i])
		}
		sorted := append([]float64(nil), means...)
		sort.Float64s(sorted)
		k := max(1, T/8)
		mu := 0.0
		for _, s := range sorted[:k] {
			mu += s
		}
		mu /= float64(k)
		for t := range est {
			est[t] = math.Max(0, means[t]-mu)
		}
	case *DP:
		mean := v.History[i]
		if mean == nil {
			mean = v.Reports[i][0]
		}
		for t, z := range mean {
			est[t] = math.Min(math.Max(z, 0), p.EVs[i].PMax)
		}
	case *Shamir:
		// Unencrypted uplinks carry every share: any threshold of them
		// interpolate to x_i(t).
		links := mech.Links()[i]
		shares := make([]Share, mech.cfg.Threshold)
		for t := range est {
			for h := range shares {
				shares[h] = Share{X: uint64(h + 1), Y: links[h][t]}
			}
			x, err := Combine(shares)
			if err != nil {
				copy(est, fleet)
				break
			}
			est[t] = decodeField(x)
		}
	default:
		// masking: uniform words; the public fleet average is all there is.
		copy(est, fleet)
	}
	return est
}

// rowMean averages a vehicle's message rows slot by slot.
func rowMean(rows [][]float64) []float64 {
	if len(rows) == 0 {
		return nil
	}
	out := make([]float64, len(rows[0]))
	for _, r := range rows {
		for t, v := range r {
			out[t] += v / float64(len(rows))
		}
	}
	return out
}
