package aggregate

import (
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/gridveil/gridveil/charging"
)

// DPConfig parameterises the Gaussian mechanism.
type DPConfig struct {
	Epsilon float64 // per-iteration epsilon (default 1)
	Delta   float64 // per-iteration delta (default 1e-5)
}

// DP perturbs every report with the Gaussian mechanism (Dwork and Roth,
// "The Algorithmic Foundations of Differential Privacy", Thm. A.1): vehicle
// i sends x_i + N(0, sigma^2 I) with
//
//	sigma = Delta2 * sqrt(2 ln(1.25 / delta)) / epsilon,
//
// where Delta2 = pmax * sqrt(T) bounds how far the schedules of any two
// vehicles with the same public charger limit can be apart in L2. Each
// iteration is then (epsilon, delta)-DP for the vehicle's schedule, and so
// for its private data. The SO adds the noisy reports; the bus sum carries
// noise of variance n_b sigma^2.
//
// Over K iterations the loss composes. Accountant reports both the basic
// composition (K epsilon, K delta) and the tighter zero-concentrated DP
// bound (Bun and Steinke 2016): each release is rho = Delta2^2 / (2
// sigma^2)-zCDP, K releases are K rho-zCDP, which is (K rho + 2 sqrt(K rho
// ln(1/delta')), delta')-DP for any delta'.
//
// What it protects against: anyone who sees a report (the SO, an
// eavesdropper) learns about the vehicle only what the privacy loss allows,
// whatever they know besides. It costs accuracy: the coordination runs on
// noisy sums and does not reach the exact optimum.
type DP struct {
	cfg  DPConfig
	p    *charging.Problem
	seed uint64
	rec  recorder
	// Sigma is each vehicle's noise standard deviation, kW, by bus key.
	sigma map[int]float64
}

// NewDP calibrates each vehicle's noise to its charger limit.
func NewDP(p *charging.Problem, cfg DPConfig, seed uint64, record bool) (*DP, error) {
	if cfg.Epsilon == 0 {
		cfg.Epsilon = 1
	}
	if cfg.Delta == 0 {
		cfg.Delta = 1e-5
	}
	if !(cfg.Epsilon > 0) || math.IsInf(cfg.Epsilon, 0) {
		return nil, fmt.Errorf("dp: epsilon %v must be positive", cfg.Epsilon)
	}
	if !(cfg.Delta > 0 && cfg.Delta < 1) {
		return nil, fmt.Errorf("dp: delta %v must be in (0, 1)", cfg.Delta)
	}
	d := &DP{cfg: cfg, p: p, seed: seed, rec: newRecorder(p, "dp", record, 1), sigma: map[int]float64{}}
	for i, ev := range p.EVs {
		d.sigma[i] = GaussianSigma(ev.PMax*math.Sqrt(float64(p.Slots)), cfg.Epsilon, cfg.Delta)
	}
	return d, nil
}

// GaussianSigma is the classic Gaussian mechanism's noise for L2
// sensitivity delta2.
func GaussianSigma(delta2, epsilon, delta float64) float64 {
	return delta2 * math.Sqrt(2*math.Log(1.25/delta)) / epsilon
}

// Name implements Mechanism.
func (*DP) Name() string { return "dp" }

// Params implements Mechanism.
func (d *DP) Params() map[string]float64 {
	return map[string]float64{"epsilon": d.cfg.Epsilon, "delta": d.cfg.Delta}
}

// ReportBytes implements Mechanism.
func (*DP) ReportBytes(slots int) int { return 8 * slots }

// Exact implements Mechanism.
func (*DP) Exact() bool { return false }

// Sigma returns vehicle i's noise standard deviation, kW.
func (d *DP) Sigma(i int) float64 { return d.sigma[i] }

// View implements Mechanism.
func (d *DP) View() *View {
	known := map[string]map[string]float64{}
	for k, evs := range groups(d.p) {
		known[busKey(d.p, charging.Group{Feeder: k[0], Bus: k[1]})] = map[string]float64{"n": float64(len(evs)), "sigma_kw": d.sigma[evs[0]]}
	}
	return d.rec.view(known, d.Params())
}

// Aggregate implements charging.Aggregator.
func (d *DP) Aggregate(iter int, g charging.Group, x []float64, slots int, sum []float64) error {
	rng := rand.New(rand.NewPCG(d.seed^uint64(g.Feeder)<<20^uint64(g.Bus), uint64(iter+2)))
	var msgs []float64
	if d.rec.on && iter >= 0 {
		msgs = make([]float64, len(g.EVs)*slots)
	}
	clear(sum[:slots])
	for k, ev := range g.EVs {
		s := d.sigma[ev]
		for t, v := range x[k*slots : (k+1)*slots] {
			z := v + s*rng.NormFloat64()
			sum[t] += z
			if msgs != nil {
				msgs[k*slots+t] = z
			}
		}
	}
	d.rec.floats(iter, g, msgs, slots, 1, sum)
	return nil
}

// Loss is a privacy loss after some number of releases.
type Loss struct {
	Releases      int     `json:"releases"`
	BasicEpsilon  float64 `json:"basic_epsilon"`
	BasicDelta    float64 `json:"basic_delta"`
	Rho           float64 `json:"zcdp_rho"`
	ZCDPEpsilon   float64 `json:"zcdp_epsilon"`
	ZCDPDeltaUsed float64 `json:"zcdp_delta"`
}

// Accountant returns the loss after k iterations, with the zCDP bound
// converted at delta' = the per-iteration delta. Each iteration is
// rho = epsilon^2 / (4 ln(1.25/delta))-zCDP: Delta2^2 / (2 sigma^2) with
// sigma as in GaussianSigma.
func (d *DP) Accountant(k int) Loss {
	eps, delta := d.cfg.Epsilon, d.cfg.Delta
	rho := eps * eps / (4 * math.Log(1.25/delta))
	R := float64(k) * rho
	return Loss{
		Releases: k, BasicEpsilon: float64(k) * eps, BasicDelta: math.Min(1, float64(k)*delta),
		Rho: R, ZCDPEpsilon: R + 2*math.Sqrt(R*math.Log(1/delta)), ZCDPDeltaUsed: delta,
	}
}
