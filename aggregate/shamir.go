package aggregate

import (
	"crypto/rand"
	"fmt"
	mrand "math/rand/v2"

	"github.com/gridveil/gridveil/charging"
)

// ShamirConfig parameterises secret-shared aggregation.
type ShamirConfig struct {
	Holders   int // shareholders: LAGs and the SO (default 3)
	Threshold int // shares needed to reconstruct (default 2)
}

// Shamir is secret-shared aggregation (Shamir 1979; the additive use for
// sums follows Rottondi et al. and seed 001's refs. 14-17): every vehicle
// splits the fixed-point encoding of each x_i(t) into Holders shares of a
// random polynomial of degree Threshold-1 over GF(2^61-1) and sends share h
// to shareholder h (the LAGs and the SO) over a confidential, authenticated
// channel. Shares are linear, so each shareholder adds the shares it holds
// for a bus; any Threshold of those partial sums interpolate to the bus sum
// at 0, and nothing else is ever reconstructed.
//
// What it protects against: any coalition of fewer than Threshold
// shareholders sees shares that are uniformly distributed whatever the
// vehicles' schedules (information-theoretic, no key to break). The SO runs
// shareholder 0. Not protected: Threshold colluding shareholders learn every
// vehicle's schedule; an eavesdropper who reads all of one vehicle's uplinks
// in the clear learns its schedule, so the channels must be encrypted (the
// eavesdropper attack here assumes they are not, and shows that).
type Shamir struct {
	cfg   ShamirConfig
	p     *charging.Problem
	rng   map[[2]int]*mrand.ChaCha8
	rec   recorder
	links map[int][][]uint64 // last iteration: every share a vehicle sent (for the eavesdropper)
}

// NewShamir returns the mechanism with one coefficient generator per bus,
// seeded from crypto/rand.
func NewShamir(p *charging.Problem, cfg ShamirConfig, record bool) (*Shamir, error) {
	if cfg.Holders == 0 {
		cfg.Holders = 3
	}
	if cfg.Threshold == 0 {
		cfg.Threshold = 2
	}
	if cfg.Holders < 1 || cfg.Holders > 255 || cfg.Threshold < 1 || cfg.Threshold > cfg.Holders {
		return nil, fmt.Errorf("shamir: need 1 <= threshold (%d) <= holders (%d) <= 255", cfg.Threshold, cfg.Holders)
	}
	s := &Shamir{cfg: cfg, p: p, rng: map[[2]int]*mrand.ChaCha8{}, rec: newRecorder(p, "shamir", record, 1), links: map[int][][]uint64{}}
	for k := range groups(p) {
		var seed [32]byte
		if _, err := rand.Read(seed[:]); err != nil {
			return nil, fmt.Errorf("shamir: %w", err)
		}
		s.rng[k] = mrand.NewChaCha8(seed)
	}
	return s, nil
}

// Name implements Mechanism.
func (*Shamir) Name() string { return "shamir" }

// Params implements Mechanism.
func (s *Shamir) Params() map[string]float64 {
	return map[string]float64{"holders": float64(s.cfg.Holders), "threshold": float64(s.cfg.Threshold), "fixed_scale": FixedScale}
}

// ReportBytes implements Mechanism: one 8-byte share per slot per holder.
func (s *Shamir) ReportBytes(slots int) int { return 8 * slots * s.cfg.Holders }

// Exact implements Mechanism.
func (*Shamir) Exact() bool { return true }

// View implements Mechanism: the shares held by shareholder 0, the SO's.
func (s *Shamir) View() *View {
	known := map[string]map[string]float64{}
	for k, evs := range groups(s.p) {
		known[busKey(s.p, charging.Group{Feeder: k[0], Bus: k[1]})] = map[string]float64{"n": float64(len(evs))}
	}
	return s.rec.view(known, s.Params())
}

// Links returns every share each vehicle sent in the last recorded
// iteration, [holder][slot]: what an eavesdropper on its uplink in the
// clear would read.
func (s *Shamir) Links() map[int][][]uint64 { return s.links }

// Aggregate implements charging.Aggregator.
func (s *Shamir) Aggregate(iter int, g charging.Group, x []float64, slots int, sum []float64) error {
	rng := s.rng[[2]int{g.Feeder, g.Bus}]
	H, t := s.cfg.Holders, s.cfg.Threshold
	partial := make([][]fe, H) // each shareholder's running sum per slot
	for h := range partial {
		partial[h] = make([]fe, slots)
	}
	coef := make([]fe, t)
	shr := make([]fe, H)
	var soView []uint64
	if s.rec.on && iter >= 0 {
		soView = make([]uint64, len(g.EVs)*slots)
	}
	for k := range g.EVs {
		row := x[k*slots : (k+1)*slots]
		var link [][]uint64
		if soView != nil {
			link = make([][]uint64, H)
			for h := range link {
				link[h] = make([]uint64, slots)
			}
		}
		for tt, v := range row {
			split(encodeField(v), t, H, rng.Uint64, coef, shr)
			for h := 0; h < H; h++ {
				partial[h][tt] = fadd(partial[h][tt], shr[h])
				if link != nil {
					link[h][tt] = shr[h]
				}
			}
			if soView != nil {
				soView[k*slots+tt] = shr[0]
			}
		}
		if link != nil {
			s.rec.mu.Lock()
			s.links[g.EVs[k]] = link
			s.rec.mu.Unlock()
		}
	}
	// The SO interpolates the first t shareholders' partial sums.
	xs := make([]uint64, t)
	for h := range xs {
		xs[h] = uint64(h + 1)
	}
	w, err := lagrangeAtZero(xs)
	if err != nil {
		return err
	}
	for tt := 0; tt < slots; tt++ {
		var r fe
		for h := 0; h < t; h++ {
			r = fadd(r, fmul(w[h], partial[h][tt]))
		}
		sum[tt] = decodeField(r)
	}
	s.rec.ints(iter, g, soView, slots, sum)
	return nil
}
