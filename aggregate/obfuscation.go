package aggregate

import (
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/gridveil/gridveil/charging"
)

// ObfuscationConfig parameterises seed 001's state obfuscation.
type ObfuscationConfig struct {
	M     int        // values sent per slot, m >= 1 (default 10)
	Sigma float64    // standard deviation of the obfuscating noise, kW (default 3)
	Mu    [2]float64 // each bus's key mu_b is drawn from U[lo, hi] kW (default [0, 10])
}

// Obfuscation is Algorithm 1 of seed 001: in every iteration vehicle i at
// bus b sends, for every slot t, m values z_il(t) = x_i(t) + r_il(t) with
// r_il(t) ~ N(mu_b, sigma^2). The SO adds the z of bus b's vehicles,
// averages over l and subtracts n_b mu_b, so its bus sum has error
// N(0, n_b sigma^2 / m). mu_b is a key shared by bus b's vehicles and the SO.
//
// What it protects against, and what not (the figures come from this
// package's attacks): an eavesdropper that does not know mu_b must estimate
// it, which the slots where a vehicle does not charge give away; a curious
// SO, which knows mu_b by construction, recovers each x_i(t) to within
// sigma / sqrt(m) from the vehicle's own m values. Seed 001's analysis
// leaves that case out.
type Obfuscation struct {
	cfg  ObfuscationConfig
	seed uint64
	mu   map[[2]int]float64
	p    *charging.Problem
	rec  recorder

	// FigEV and FigIter select one vehicle's messages to keep for the
	// paper's Fig. 5 (its true profile against the band of its m values).
	FigEV, FigIter int
	fig            [][]float64
	figTruth       []float64
}

// NewObfuscation draws each bus's key from seed and returns the mechanism.
// record keeps the last iteration's messages for attacks.
func NewObfuscation(p *charging.Problem, cfg ObfuscationConfig, seed uint64, record bool) (*Obfuscation, error) {
	if cfg.M == 0 {
		cfg.M = 10
	}
	if cfg.Sigma == 0 {
		cfg.Sigma = 3
	}
	if cfg.Mu == [2]float64{} {
		cfg.Mu = [2]float64{0, 10}
	}
	if cfg.M < 1 || cfg.M > 1000 {
		return nil, fmt.Errorf("obfuscation: m = %d must be in 1..1000", cfg.M)
	}
	if !(cfg.Sigma > 0) || math.IsInf(cfg.Sigma, 0) {
		return nil, fmt.Errorf("obfuscation: sigma = %v kW must be positive", cfg.Sigma)
	}
	if !(cfg.Mu[1] >= cfg.Mu[0]) || math.IsInf(cfg.Mu[0], 0) || math.IsInf(cfg.Mu[1], 0) {
		return nil, fmt.Errorf("obfuscation: mu range %v must be [lo, hi] with lo <= hi", cfg.Mu)
	}
	o := &Obfuscation{cfg: cfg, seed: seed, p: p, mu: map[[2]int]float64{}, rec: newRecorder(p, "obfuscation", record, cfg.M), FigEV: -1}
	// Keys in a fixed order of (feeder, bus), so that they depend only on
	// the seed.
	rng := rand.New(rand.NewPCG(seed, 0x6f6266)) // "obf"
	for fi := range p.Feeders {
		for b := 1; b < len(p.Feeders[fi].Buses); b++ {
			o.mu[[2]int{fi, b}] = cfg.Mu[0] + (cfg.Mu[1]-cfg.Mu[0])*rng.Float64()
		}
	}
	return o, nil
}

// Name implements Mechanism.
func (*Obfuscation) Name() string { return "obfuscation" }

// Params implements Mechanism.
func (o *Obfuscation) Params() map[string]float64 {
	return map[string]float64{"m": float64(o.cfg.M), "sigma_kw": o.cfg.Sigma, "mu_lo_kw": o.cfg.Mu[0], "mu_hi_kw": o.cfg.Mu[1]}
}

// ReportBytes implements Mechanism: m float64 values per slot.
func (o *Obfuscation) ReportBytes(slots int) int { return 8 * o.cfg.M * slots }

// Exact implements Mechanism.
func (*Obfuscation) Exact() bool { return false }

// Key returns bus b's key mu_b.
func (o *Obfuscation) Key(feeder, bus int) float64 { return o.mu[[2]int{feeder, bus}] }

// Figure returns the recorded Fig. 5 data: the vehicle's m messages and its
// true schedule in iteration FigIter, or nil.
func (o *Obfuscation) Figure() (msgs [][]float64, truth []float64) { return o.fig, o.figTruth }

// View implements Mechanism.
func (o *Obfuscation) View() *View {
	known := map[string]map[string]float64{}
	for k, evs := range groups(o.p) {
		key := busKey(o.p, charging.Group{Feeder: k[0], Bus: k[1]})
		known[key] = map[string]float64{"mu_kw": o.mu[k], "n": float64(len(evs))}
	}
	return o.rec.view(known, o.Params())
}

// Aggregate implements charging.Aggregator.
func (o *Obfuscation) Aggregate(iter int, g charging.Group, x []float64, slots int, sum []float64) error {
	mu := o.mu[[2]int{g.Feeder, g.Bus}]
	m := o.cfg.M
	// A stream per (bus, iteration): the draws do not depend on how the
	// solver schedules groups.
	rng := rand.New(rand.NewPCG(o.seed^uint64(g.Feeder)<<20^uint64(g.Bus), uint64(iter+2)))
	var msgs []float64
	if o.rec.on && iter >= 0 {
		msgs = make([]float64, len(g.EVs)*m*slots)
	}
	clear(sum[:slots])
	for k, ev := range g.EVs {
		row := x[k*slots : (k+1)*slots]
		keepFig := ev == o.FigEV && iter == o.FigIter
		if keepFig {
			o.fig = make([][]float64, m)
			o.figTruth = append([]float64(nil), row...)
		}
		for l := 0; l < m; l++ {
			var out []float64
			if msgs != nil {
				out = msgs[(k*m+l)*slots : (k*m+l+1)*slots]
			}
			if keepFig {
				o.fig[l] = make([]float64, slots)
			}
			for t, v := range row {
				z := v + mu + o.cfg.Sigma*rng.NormFloat64() // the message on the wire
				sum[t] += z
				if out != nil {
					out[t] = z
				}
				if keepFig {
					o.fig[l][t] = z
				}
			}
		}
	}
	// The SO's side: average over l, remove the keys.
	n := float64(len(g.EVs))
	for t := range sum[:slots] {
		sum[t] = sum[t]/float64(m) - n*mu
	}
	o.rec.floats(iter, g, msgs, slots, m, sum)
	return nil
}
