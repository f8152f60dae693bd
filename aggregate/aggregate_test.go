package aggregate

import (
	"errors"
	"math"
	"math/big"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/gridveil/gridveil/charging"
	"github.com/gridveil/gridveil/scenario"
)

func paper(t testing.TB) *charging.Problem {
	t.Helper()
	spec, err := scenario.Load("ieee13-paper")
	if err != nil {
		t.Fatal(err)
	}
	p, _, err := scenario.Build(spec, 1, 0)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestFieldArithmetic(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 1))
	bp := new(big.Int).SetUint64(P)
	for i := 0; i < 10000; i++ {
		a, b := randField(rng.Uint64), randField(rng.Uint64)
		want := new(big.Int).Mul(new(big.Int).SetUint64(a), new(big.Int).SetUint64(b))
		want.Mod(want, bp)
		if got := fmul(a, b); got != want.Uint64() {
			t.Fatalf("%d * %d = %d, want %d", a, b, got, want.Uint64())
		}
		if a != 0 && fmul(a, finv(a)) != 1 {
			t.Fatalf("inverse of %d wrong", a)
		}
		if fadd(fsub(a, b), b) != a {
			t.Fatal("add/sub do not invert")
		}
	}
}

func TestShamirRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(2, 2))
	for trial := 0; trial < 200; trial++ {
		n := 1 + rng.IntN(10)
		th := 1 + rng.IntN(n)
		secret := randField(rng.Uint64)
		out, coef := make([]fe, n), make([]fe, th)
		split(secret, th, n, rng.Uint64, coef, out)
		// Any th shares reconstruct it.
		perm := rng.Perm(n)[:th]
		shares := make([]Share, th)
		for k, i := range perm {
			shares[k] = Share{X: uint64(i + 1), Y: out[i]}
		}
		got, err := Combine(shares)
		if err != nil || got != secret {
			t.Fatalf("n=%d t=%d: got %d, %v; want %d", n, th, got, err, secret)
		}
	}
	if _, err := Combine([]Share{{X: 1, Y: 5}, {X: 1, Y: 6}}); !errors.Is(err, ErrShares) {
		t.Fatalf("duplicate points accepted: %v", err)
	}
}

// chiSquare256 returns the chi-square statistic of byte values against the
// uniform distribution on 256 values.
func chiSquare256(vals []byte) float64 {
	var c [256]float64
	for _, v := range vals {
		c[v]++
	}
	e := float64(len(vals)) / 256
	s := 0.0
	for _, o := range c {
		s += (o - e) * (o - e) / e
	}
	return s
}

// chi-square with 255 degrees of freedom exceeds 330.5 with probability
// 1e-3; the tests draw fresh keys from crypto/rand, so that is their false
// alarm rate per check.
const chi255 = 330.5

// TestShamirBelowThresholdLearnsNothing: the shares a coalition of t-1
// holders sees are uniform, for a secret of 0 and for a large secret alike.
func TestShamirBelowThresholdLearnsNothing(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 3))
	const n, th = 5, 3
	for _, secret := range []fe{0, encodeField(6.6), P - 1} {
		var top, low []byte
		out, coef := make([]fe, n), make([]fe, th)
		for k := 0; k < 20000; k++ {
			split(secret, th, n, rng.Uint64, coef, out)
			for _, h := range []int{1, 3} { // a coalition of t-1 = 2 holders
				top = append(top, byte(out[h]>>53))
				low = append(low, byte(out[h]))
			}
		}
		if c := chiSquare256(top); c > chi255 {
			t.Errorf("secret %d: top bytes of the coalition's shares are not uniform (chi2 %.0f)", secret, c)
		}
		if c := chiSquare256(low); c > chi255 {
			t.Errorf("secret %d: low bytes not uniform (chi2 %.0f)", secret, c)
		}
	}
}

func solveWith(t testing.TB, p *charging.Problem, m Mechanism, maxIter int) *charging.Solution {
	t.Helper()
	sol, err := charging.Solve(p, charging.Options{Aggregator: m, MaxIter: maxIter})
	if err != nil {
		t.Fatal(err)
	}
	return sol
}

func maxDev(a, b []float64) float64 {
	d := 0.0
	for t := range a {
		d = math.Max(d, math.Abs(a[t]-b[t]))
	}
	return d
}

func TestExactMechanismsMatchNone(t *testing.T) {
	p := paper(t)
	base := solveWith(t, p, NewNone(p, false), 0)
	mask, err := NewMasking(p, MaskingConfig{}, 1, false)
	if err != nil {
		t.Fatal(err)
	}
	sh, err := NewShamir(p, ShamirConfig{Holders: 5, Threshold: 3}, false)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range []Mechanism{mask, sh} {
		sol := solveWith(t, p, m, base.Iterations)
		if d := maxDev(sol.Aggregate, base.Aggregate); d > 1e-6 {
			t.Errorf("%s: aggregate deviates %.3g kW from none's (want < 1e-6)", m.Name(), d)
		}
	}
	// At 30% losses per phase a complete first round is rare; the SO
	// starts from the best partial one instead of giving up.
	heavy, err := NewMasking(p, MaskingConfig{DropRate: 0.3}, 1, false)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := charging.Solve(p, charging.Options{Aggregator: heavy, MaxIter: 30}); err != nil {
		t.Errorf("masking, 30%% dropouts: %v", err)
	}
	// With dropouts the SO coordinates on complete sums a few iterations
	// stale, and still reaches the optimum, to within what the stale sums
	// leave of the last iterations' changes (about 1e-5 kW here; a partial
	// sum would never settle).
	for _, rate := range []float64{0.05, 0.2} {
		drop, err := NewMasking(p, MaskingConfig{DropRate: rate}, 1, false)
		if err != nil {
			t.Fatal(err)
		}
		sol := solveWith(t, p, drop, 5000)
		d := maxDev(sol.Aggregate, base.Aggregate)
		t.Logf("masking, %.0f%% dropouts: %d iterations (none: %d), aggregate off none's by %.3g kW, %d failed rounds", 100*rate, sol.Iterations, base.Iterations, d, drop.FailedRounds())
		if !sol.Converged || d > 1e-4 || drop.FailedRounds() == 0 && rate > 0.1 {
			t.Errorf("masking, %.0f%% dropouts: converged %v in %d iterations, aggregate off none's by %.3g kW, %d failed rounds", 100*rate, sol.Converged, sol.Iterations, d, drop.FailedRounds())
		}
	}
}

// TestMaskedReportsUniform: what the SO and an eavesdropper see of masked
// reports is indistinguishable from uniform, and unrelated to the schedule.
func TestMaskedReportsUniform(t *testing.T) {
	p := paper(t)
	m, err := NewMasking(p, MaskingConfig{}, 1, true)
	if err != nil {
		t.Fatal(err)
	}
	sol := solveWith(t, p, m, 0)
	v := m.View()
	var top, low []byte
	var zeroTop []byte // words of slots where the vehicle does not charge
	for i, rows := range v.Words {
		for tt, w := range rows[0] {
			top = append(top, byte(w>>56))
			low = append(low, byte(w))
			if sol.Schedules[i][tt] == 0 {
				zeroTop = append(zeroTop, byte(w>>56))
			}
		}
	}
	for name, b := range map[string][]byte{"top byte": top, "low byte": low} {
		if c := chiSquare256(b); c > chi255 {
			t.Errorf("masked words: %s not uniform (chi2 %.0f over %d words)", name, c, len(b))
		}
	}
	if len(zeroTop) > 2000 {
		if c := chiSquare256(zeroTop); c > chi255 {
			t.Errorf("masked words of idle slots are not uniform (chi2 %.0f): the mask leaks idle slots", c)
		}
	}
	sc, err := Attack(m, p, sol)
	if err != nil {
		t.Fatal(err)
	}
	if sc.RMSE["so"] < sc.BusMean*0.999 {
		t.Errorf("curious SO beats the bus average against masking: %.4f < %.4f kW", sc.RMSE["so"], sc.BusMean)
	}
	if sc.RMSE["eavesdropper"] < sc.Prior*0.999 {
		t.Errorf("eavesdropper beats the prior against masking: %.4f < %.4f kW", sc.RMSE["eavesdropper"], sc.Prior)
	}
	if sc.RMSE["so_with_evs"] > 1e-6 {
		t.Errorf("the SO with all but one vehicle of a bus should recover the last exactly (inherent in an exact sum); RMSE %.3g", sc.RMSE["so_with_evs"])
	}
}

// TestMaskingDropout: with reports and corrections lost, the SO still
// recovers exactly the remaining vehicles' sum, coordinates on the last
// complete sum, no vehicle needs a new key (nothing long-term was
// revealed), and the SO cannot have a vehicle's self-mask seed after the
// masks with it.
func TestMaskingDropout(t *testing.T) {
	p := paper(t)
	m, err := NewMasking(p, MaskingConfig{DropRate: 0.25}, 7, false)
	if err != nil {
		t.Fatal(err)
	}
	g := firstBus(p)
	T := p.Slots
	rng := rand.New(rand.NewPCG(9, 9))
	x := make([]float64, len(g.EVs)*T)
	sum := make([]float64, T)
	keys := append([][]byte(nil), m.PublicKeys(g.Feeder, g.Bus)...)
	drops, failed := 0, 0
	late := 0 // rounds in which a vehicle that sent a correction then dropped
	var last *maskRound
	m.bus[[2]int{g.Feeder, g.Bus}].trace = func(r *maskRound) {
		last = r
		for _, j := range r.dropped {
			if r.corrections[j] != nil {
				late++
				return
			}
		}
	}
	var full []float64 // the last complete sum
	for iter := 0; iter < 60; iter++ {
		for k := range x {
			x[k] = rng.Float64() * 6.6
		}
		before := m.FailedRounds()
		err := m.Aggregate(iter, g, x, T, sum)
		dropped := m.LastDropped(g.Feeder, g.Bus)
		if err != nil {
			t.Fatal(err)
		}
		if len(dropped) == 0 {
			full = append(full[:0], sum...)
		} else if maxDev(full, sum) != 0 {
			t.Fatalf("iteration %d: %d dropped, and the SO did not keep its last complete sum", iter, len(dropped))
		}
		if iter > 0 && m.FailedRounds() > before {
			// Too few answered: nothing recovered. (A failed first round
			// is run again instead.)
			if last.recovered != nil {
				t.Fatalf("iteration %d: a failed round recovered a sum", iter)
			}
			failed++
			continue
		}
		lost := map[int]bool{}
		for _, j := range dropped {
			lost[j] = true
		}
		drops += len(dropped)
		for tt := 0; tt < T; tt++ {
			want := 0.0
			for k := range g.EVs {
				if !lost[k] {
					want += x[k*T+tt]
				}
			}
			if math.Abs(last.recovered[tt]-want) > 1e-6 {
				t.Fatalf("iteration %d slot %d: recovered %v, remaining vehicles' sum %v (dropped %v)", iter, tt, last.recovered[tt], want, dropped)
			}
		}
	}
	if drops == 0 || failed == 0 || late == 0 || failed > m.FailedRounds() {
		t.Fatalf("%d dropouts, %d failed rounds (mechanism counts %d), %d rounds with a drop after a correction: the test should see all three", drops, failed, m.FailedRounds(), late)
	}
	for i, k := range m.PublicKeys(g.Feeder, g.Bus) {
		if string(k) != string(keys[i]) {
			t.Fatalf("vehicle %d changed its key: recovery must not reveal keys", i)
		}
	}
	// The SO asks a vehicle for its share of vehicle 3's self-mask after
	// its masks with 3, and the other way round: both refused.
	v := m.bus[[2]int{g.Feeder, g.Bus}].veh[0]
	r := m.bus[[2]int{g.Feeder, g.Bus}].round - 1
	if _, err := v.Answer(&MaskRequest{Round: r, Feeder: g.Feeder, Bus: g.Bus, Pass: 90, Index: 0, Dropped: []int{3}}); err != nil {
		t.Fatalf("a correction for vehicle 3: %v", err)
	}
	if _, err := v.Answer(&MaskRequest{Round: r, Feeder: g.Feeder, Bus: g.Bus, Pass: 91, Index: 0, Owners: []int{3}, Shares: make([]uint64, seedChunks)}); !errors.Is(err, ErrRefused) {
		t.Fatalf("asking for the seed share of a vehicle whose masks were revealed: %v, want ErrRefused", err)
	}
	if _, err := v.Answer(&MaskRequest{Round: r, Feeder: g.Feeder, Bus: g.Bus, Pass: 92, Index: 0, Owners: []int{4}, Shares: slices.Clone(v.pad[4*seedChunks : 5*seedChunks])}); err != nil {
		t.Fatalf("a share of vehicle 4's seed: %v", err)
	}
	if _, err := v.Answer(&MaskRequest{Round: r, Feeder: g.Feeder, Bus: g.Bus, Pass: 93, Index: 0, Dropped: []int{4}}); !errors.Is(err, ErrRefused) {
		t.Fatalf("asking for the masks with a vehicle whose seed share was revealed: %v, want ErrRefused", err)
	}
	if _, err := v.Answer(&MaskRequest{Round: r, Feeder: g.Feeder, Bus: g.Bus, Pass: 94, Index: 0, Dropped: []int{5}, Owners: []int{5}, Shares: make([]uint64, seedChunks)}); !errors.Is(err, ErrRefused) {
		t.Fatalf("asking for both at once: %v, want ErrRefused", err)
	}
}

// TestMaskingDropoutHidesOtherRounds plays an SO that keeps everything it
// is sent. When vehicle j drops in round r', the SO gets every other
// vehicle's masks with j for r'; it also holds j's reports and self-mask
// seeds of the rounds j survived. Those corrections must unmask j's report
// of r' given its seed (the check that the attack is right: it is what
// double masking withholds), and must not unmask any other round's: masks
// that repeat over rounds, or recovery that reveals a key, fail here.
func TestMaskingDropoutHidesOtherRounds(t *testing.T) {
	p := paper(t)
	m, err := NewMasking(p, MaskingConfig{DropRate: 0.15}, 3, false)
	if err != nil {
		t.Fatal(err)
	}
	g := firstBus(p)
	b := m.bus[[2]int{g.Feeder, g.Bus}]
	var rounds []*maskRound
	var xs [][]float64 // each round's true schedules
	var x []float64
	b.trace = func(r *maskRound) { rounds, xs = append(rounds, r), append(xs, x) }
	T := p.Slots
	rng := rand.New(rand.NewPCG(4, 4))
	sum := make([]float64, T)
	for iter := 0; iter < 80; iter++ {
		x = make([]float64, len(g.EVs)*T)
		for k := range x {
			x[k] = rng.Float64() * 6.6
		}
		if err := m.Aggregate(iter, g, x, T, sum); err != nil {
			t.Fatal(err)
		}
	}
	// unmask subtracts a self-mask and adds the corrections from round
	// rc to a report.
	unmask := func(y []uint64, seed [16]byte, rc *maskRound) []float64 {
		var prg rand.ChaCha8
		seedPRG(&prg, seed)
		out := make([]float64, T)
		for tt := range out {
			v := y[tt] - prg.Uint64()
			for _, c := range rc.corrections {
				v += c[tt]
			}
			out[tt] = decode64(v)
		}
		return out
	}
	checked, controls := 0, 0
	for rp, r := range rounds {
		if len(r.dropped) != 1 || len(r.corrections) == 0 {
			continue
		}
		j := r.dropped[0]
		// Control: j's own report of r' (as if it arrived late) with j's
		// seed, which the vehicles never give the SO in that round.
		got := unmask(r.y[j], r.seeds[j], r)
		if d := maxDev(got, xs[rp][j*T:(j+1)*T]); d > 1e-6 {
			t.Fatalf("round %d: corrections do not unmask the dropped vehicle's own report (off by %g kW): the attack is wrong", rp, d)
		}
		controls++
		for ro, o := range rounds {
			seed, ok := o.revealed[j]
			if ro == rp || !ok {
				continue
			}
			got := unmask(o.y[j], seed, r)
			for tt, v := range got {
				if math.Abs(v-xs[ro][j*T+tt]) < 1 {
					t.Fatalf("round %d's corrections bring vehicle %d's report of round %d within 1 kW at slot %d", rp, j, ro, tt)
				}
			}
			checked++
		}
	}
	if controls == 0 || checked < 20 {
		t.Fatalf("%d rounds with one dropout, %d other rounds attacked: too few to test", controls, checked)
	}
}

// TestObfuscationError: the SO's bus sum is off by N(0, n sigma^2 / m)
// (seed 001's SEM), and a curious SO that knows mu_b recovers each
// vehicle to within sigma / sqrt(m).
func TestObfuscationError(t *testing.T) {
	p := paper(t)
	for _, cfg := range []ObfuscationConfig{{M: 10, Sigma: 3}, {M: 4, Sigma: 1}, {M: 40, Sigma: 5}} {
		o, err := NewObfuscation(p, cfg, 11, false)
		if err != nil {
			t.Fatal(err)
		}
		g := firstBus(p)
		T := p.Slots
		x := make([]float64, len(g.EVs)*T)
		for k := range x {
			x[k] = float64(k%7) * 0.9
		}
		truth := make([]float64, T)
		for k := range g.EVs {
			for tt := 0; tt < T; tt++ {
				truth[tt] += x[k*T+tt]
			}
		}
		sum := make([]float64, T)
		var ss float64
		var cnt int
		for iter := 0; iter < 400; iter++ {
			if err := o.Aggregate(iter, g, x, T, sum); err != nil {
				t.Fatal(err)
			}
			for tt := range sum {
				e := sum[tt] - truth[tt]
				ss += e * e
				cnt++
			}
		}
		got := math.Sqrt(ss / float64(cnt))
		want := cfg.Sigma * math.Sqrt(float64(len(g.EVs))/float64(cfg.M))
		if math.Abs(got/want-1) > 0.1 {
			t.Errorf("m=%d sigma=%v: bus-sum error %.4f kW, theory sigma sqrt(n/m) = %.4f", cfg.M, cfg.Sigma, got, want)
		}
	}
	// The curious SO on a whole run.
	o, _ := NewObfuscation(p, ObfuscationConfig{M: 10, Sigma: 3}, 5, true)
	sol := solveWith(t, p, o, 150)
	sc, err := Attack(o, p, sol)
	if err != nil {
		t.Fatal(err)
	}
	if want := 3 / math.Sqrt(10); math.Abs(sc.RMSE["so"]/want-1) > 0.1 {
		t.Errorf("curious SO's RMSE %.4f kW, want sigma/sqrt(m) = %.4f", sc.RMSE["so"], want)
	}
	if sc.RMSE["eavesdropper"] >= sc.Prior {
		t.Errorf("the eavesdropper's key estimate should beat the prior: %.3f >= %.3f", sc.RMSE["eavesdropper"], sc.Prior)
	}
}

func TestDPAccountant(t *testing.T) {
	p := paper(t)
	d, err := NewDP(p, DPConfig{Epsilon: 0.5, Delta: 1e-6}, 1, false)
	if err != nil {
		t.Fatal(err)
	}
	// Independent route: rho from the noise actually added.
	delta2 := 6.6 * math.Sqrt(float64(p.Slots))
	sigma := d.Sigma(0)
	rho := delta2 * delta2 / (2 * sigma * sigma)
	for _, k := range []int{1, 10, 100} {
		l := d.Accountant(k)
		if math.Abs(l.Rho-float64(k)*rho) > 1e-12*l.Rho {
			t.Errorf("k=%d: rho %v, want %v", k, l.Rho, float64(k)*rho)
		}
		want := float64(k)*rho + 2*math.Sqrt(float64(k)*rho*math.Log(1/1e-6))
		if math.Abs(l.ZCDPEpsilon-want) > 1e-9*want {
			t.Errorf("k=%d: zCDP epsilon %v, want %v", k, l.ZCDPEpsilon, want)
		}
		if l.BasicEpsilon != 0.5*float64(k) {
			t.Errorf("k=%d: basic epsilon %v", k, l.BasicEpsilon)
		}
	}
	// The noise really has that deviation.
	g := charging.Group{Feeder: 0, Bus: p.EVs[0].Bus, EVs: []int{0}}
	x := make([]float64, p.Slots)
	sum := make([]float64, p.Slots)
	var ss float64
	var n int
	for iter := 0; iter < 2000; iter++ {
		_ = d.Aggregate(iter, g, x, p.Slots, sum)
		for _, v := range sum {
			ss += v * v
			n++
		}
	}
	if got := math.Sqrt(ss / float64(n)); math.Abs(got/sigma-1) > 0.02 {
		t.Errorf("noise deviation %.2f, calibrated %.2f", got, sigma)
	}
}

// firstBus returns the group of vehicles at the first vehicle's bus.
func firstBus(p *charging.Problem) charging.Group {
	g := charging.Group{Feeder: p.EVs[0].Feeder, Bus: p.EVs[0].Bus}
	for i, ev := range p.EVs {
		if ev.Feeder == g.Feeder && ev.Bus == g.Bus {
			g.EVs = append(g.EVs, i)
		}
	}
	return g
}
