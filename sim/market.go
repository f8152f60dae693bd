package sim

import (
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/gridveil/gridveil/charging"
	"github.com/gridveil/gridveil/ledger"
	"github.com/gridveil/gridveil/market"
	"github.com/gridveil/gridveil/runfile"
	"github.com/gridveil/gridveil/scenario"
)

// Market is the charging-rights market traded after the coordination
// (docs/LEDGER.md): On runs it, on the first feeder's stations.
type Market struct {
	On      bool
	Rule    string  // clearing rule: uniform, pay-as-bid or mcafee
	Margin  float64 // the grid company's load margin, a fraction of the stations' demand per window
	FeePPM  int64   // fee on each trade's value, parts per million
	Penalty int64   // per kWh of deviation from rights, milli-currency
	// Headroom is the share of each bus's voltage headroom the grid
	// company posts for trading. The coordinated schedules already meet
	// the voltage limits and buyers only buy what they lack, so at 1 the
	// line security check cannot refuse a match; a smaller share (a
	// reserve, e.g. for forecast error) makes it bind.
	Headroom float64
}

// rollingBidder is a station under rolling prices: its demand falls
// linearly from all of it at price 0 to nothing at its choke price.
type rollingBidder struct {
	base  []float64 // Wh per window
	choke float64
}

// Demand implements market.Bidder.
func (b rollingBidder) Demand(price, out []float64) {
	for t := range out {
		out[t] = b.base[t] * math.Max(0, 1-price[t]/b.choke)
	}
}

// runRolling forms rolling prices for the day's windows. Each station's
// choke price is drawn from the seed in [100, 900) milli-currency per kWh
// (the auction's private values lie in [50, 500)).
func runRolling(cfg ledger.DayConfig, seed uint64) (*runfile.Rolling, error) {
	W := len(cfg.Margin)
	rng := rand.New(rand.NewPCG(seed, 0x726f6c6c)) // "roll"
	rf := &runfile.Rolling{Choke: map[string]float64{}}
	bidders := make([]market.Bidder, len(cfg.Stations))
	slope := make([]float64, W) // Wh per unit price, summed over stations
	for i, st := range cfg.Stations {
		b := rollingBidder{base: make([]float64, W), choke: math.Round(100 + 800*rng.Float64())}
		for w, d := range st.Demand {
			b.base[w] = float64(d)
			slope[w] += float64(d) / b.choke
		}
		bidders[i] = b
		rf.Choke[st.Name] = b.choke
	}
	// The dual ascent is stable for steps below 2 / slope; use 1 / slope,
	// which settles each window's price in a few steps.
	step := 1.0
	for _, sl := range slope {
		if sl > 0 {
			step = math.Min(step, 1/sl)
		}
	}
	margin, floor := make([]float64, W), make([]float64, W)
	for w, m := range cfg.Margin {
		margin[w] = float64(m)
	}
	res, err := market.RollingPrices(bidders, margin, floor, step, 0.5, 100_000)
	if err != nil {
		return nil, fmt.Errorf("rolling prices: %w", err)
	}
	rf.Price, rf.Demand, rf.Iterations, rf.Converged = res.Price, res.Demand, res.Iterations, res.Converged
	return rf, nil
}

// run turns the first feeder's EV buses into stations whose demand
// per window is what their EVs draw under the coordinated schedules, and
// trades the day through the ledger application. The grid company posts a
// margin of the given fraction of demand and, for every bus, the voltage
// headroom its baseline leaves (LinDistFlow at the window's mean baseline)
// and a congestion fee on the tightest buses.
func (f *Market) run(p *charging.Problem, m *scenario.Meta, sol *charging.Solution) (*runfile.Market, error) {
	if _, err := market.ParseRule(f.Rule); err != nil {
		return nil, fmt.Errorf("--market-rule: %w", err)
	}
	if !(f.Margin > 0 && f.Margin <= 1) {
		return nil, fmt.Errorf("--market-margin %v: give a fraction in (0, 1]", f.Margin)
	}
	if !(f.Headroom > 0 && f.Headroom <= 1) {
		return nil, fmt.Errorf("--market-headroom %v: give the share of the voltage headroom to post, a fraction in (0, 1]", f.Headroom)
	}
	fd := &p.Feeders[0]
	spw := max(1, int(math.Round(0.5/p.DT))) // slots per 30-minute window
	W := (p.Slots + spw - 1) / spw
	model := &ledger.GridModel{SBaseKVA: int64(math.Round(fd.SBase))}
	for _, b := range fd.Buses {
		model.Buses = append(model.Buses, ledger.GridBus{Name: b.Name, Parent: b.Parent, RMicro: int64(math.Round(b.R * 1e6))})
	}
	stationAt := map[int]int{}
	var stations []ledger.DayStation
	for i, ev := range p.EVs {
		if ev.Feeder != 0 {
			continue
		}
		k, ok := stationAt[ev.Bus]
		if !ok {
			k = len(stations)
			stationAt[ev.Bus] = k
			stations = append(stations, ledger.DayStation{Name: "station-" + fd.Buses[ev.Bus].Name, Bus: fd.Buses[ev.Bus].Name, Demand: make([]int64, W)})
		}
		for t, x := range sol.Schedules[i] {
			stations[k].Demand[t/spw] += int64(math.Round(x * p.DT * 1000))
		}
	}
	if len(stations) < 2 {
		return nil, fmt.Errorf("--market needs EVs at two or more buses of the first feeder")
	}
	cfg := ledger.DayConfig{Chain: "gridveil-sim", Rule: f.Rule, FeePPM: f.FeePPM, Penalty: f.Penalty, Grid: model, Stations: stations, Seed: m.Seed}
	// Headroom per bus: V_base^2 - vmin^2 at the window's mean baseline.
	n := len(fd.Buses)
	pw, qw := make([]float64, n), make([]float64, n)
	v2, sc := make([]float64, n), make([]float64, n)
	for w := 0; w < W; w++ {
		var demand int64
		for _, st := range stations {
			demand += st.Demand[w]
		}
		cfg.Margin = append(cfg.Margin, int64(f.Margin*float64(demand)))
		clear(pw)
		clear(qw)
		cnt := 0
		for t := w * spw; t < min((w+1)*spw, p.Slots); t++ {
			for b := 0; b < n; b++ {
				pw[b] += fd.BaseP[b][t]
				qw[b] += fd.BaseQ[b][t]
			}
			cnt++
		}
		for b := range pw {
			pw[b] /= float64(cnt)
			qw[b] /= float64(cnt)
		}
		fd.VoltageSquared(pw, qw, v2, sc)
		slack, fee := map[string]int64{}, map[string]int64{}
		tight := math.Inf(1)
		for b := 1; b < n; b++ {
			tight = math.Min(tight, v2[b]-p.VMin*p.VMin)
		}
		for b := 1; b < n; b++ {
			h := v2[b] - p.VMin*p.VMin
			slack[fd.Buses[b].Name] = int64(f.Headroom * math.Max(0, h) * 1e9)
			if h < 1.5*tight {
				fee[fd.Buses[b].Name] = 50
			}
		}
		cfg.Slack = append(cfg.Slack, slack)
		cfg.Fee = append(cfg.Fee, fee)
	}
	day, err := ledger.RunDay(cfg)
	if err != nil {
		return nil, err
	}
	rolling, err := runRolling(cfg, m.Seed)
	if err != nil {
		return nil, err
	}
	out := &runfile.Market{Schema: "gridveil/market/v2", Scenario: m.Scenario, Seed: m.Seed, Feeder: fd.Name, Margin: f.Margin, Headroom: f.Headroom, Day: day, Rolling: rolling}
	for _, st := range stations {
		out.Stations = append(out.Stations, st.Name)
	}
	return out, nil
}
