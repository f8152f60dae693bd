package dashboard

import (
	"fmt"
	"math"
	"sort"
	"strings"

	"github.com/gridveil/gridveil/ledger"
	"github.com/gridveil/gridveil/runfile"
)

// MarketView is /api/v1/market: the day of charging-rights trading of
// market.json, window by window, and the ledger's end state.
type MarketView struct {
	Header
	Rule     string         `json:"rule"`
	Feeder   string         `json:"feeder"`
	Chain    string         `json:"chain"`
	FeePPM   int64          `json:"fee_ppm"`
	Blocks   int64          `json:"blocks"`
	AppHash  string         `json:"app_hash"`
	GridFees int64          `json:"grid_fees"`
	Income   ledger.Income  `json:"income"`
	Windows  []MarketWindow `json:"windows"`
	// Stations is day.stations of market.json as written: each station's
	// rights before and after the day's trading.
	Stations []ledger.DayStationResult `json:"stations"`
	// Refusals counts the transactions refused and matches the security
	// check refused, by reason.
	Refusals map[string]int `json:"refusals"`
}

// MarketWindow is one window: the book's depth, the trades, the clearing
// price, rights and fees.
type MarketWindow struct {
	Index          int   `json:"index"`
	DemandWh       int64 `json:"demand_wh"`
	MarginWh       int64 `json:"margin_wh"`
	RightsBeforeWh int64 `json:"rights_before_wh"`
	RightsAfterWh  int64 `json:"rights_after_wh"`
	Orders         int   `json:"orders"`
	BidWh          int64 `json:"bid_wh"`
	AskWh          int64 `json:"ask_wh"`
	// BidDepth and AskDepth are the book's cumulative energy by price:
	// bids from the highest price down, asks from the lowest up.
	BidDepth       []DepthLevel `json:"bid_depth"`
	AskDepth       []DepthLevel `json:"ask_depth"`
	Trades         int          `json:"trades"`
	VolumeWh       int64        `json:"volume_wh"`
	Price          int64        `json:"price"`
	P2PWh          int64        `json:"p2p_wh"`
	UnmetWh        int64        `json:"unmet_wh"`
	CongestionFees int64        `json:"congestion_fees"`
	CongestedBuses int          `json:"congested_buses"`
	Refused        int          `json:"refused"`
}

// DepthLevel is one price level of a book's depth.
type DepthLevel struct {
	Price      int64 `json:"price"`
	Cumulative int64 `json:"cumulative_wh"`
}

// Market builds the market view.
func (r *Run) Market() MarketView {
	v := MarketView{Header: newHeader("gridveil/dashboard-market/v1")}
	m, st := load[runfile.Market](r, "market.json")
	if !v.use(st, "market and ledger") {
		return v
	}
	if m.Day == nil {
		v.Absent = append(v.Absent, "market and ledger: market.json has no day (write it again with gridveil sim --market)")
		return v
	}
	d := m.Day
	v.Rule, v.Feeder, v.Chain, v.FeePPM = d.Rule, m.Feeder, d.Params.Chain, d.Params.FeePPM
	v.Blocks, v.AppHash, v.GridFees, v.Income, v.Stations = d.Blocks, d.AppHash, d.GridFees, d.Income, d.Stations
	v.Refusals = map[string]int{}
	v.Absent = append(v.Absent, "validators and their power: gridveil sim applies the market's blocks to the ledger application in process (ledger.Driver, a simulated clock), with no CometBFT node and so no validator set to record")
	for _, w := range d.Windows {
		mw := MarketWindow{Index: w.Index, DemandWh: w.Demand, MarginWh: w.Margin, RightsBeforeWh: w.RightsBefore, Orders: w.Orders,
			BidWh: w.BidWh, AskWh: w.AskWh, Trades: w.Trades, VolumeWh: w.Volume, Price: w.Price, P2PWh: w.P2PVolume, UnmetWh: w.Unmet,
			CongestionFees: w.Income.Congestion, CongestedBuses: len(w.Congested)}
		for _, rt := range w.Rights {
			mw.RightsAfterWh += rt.Final
		}
		var bid, ask int64
		for _, o := range w.Book { // bids by falling price, then asks by rising price
			lv := &mw.AskDepth
			c := &ask
			if o.Side == "buy" {
				lv, c = &mw.BidDepth, &bid
			}
			*c += o.Wh
			if n := len(*lv); n > 0 && (*lv)[n-1].Price == o.Price {
				(*lv)[n-1].Cumulative = *c
			} else {
				*lv = append(*lv, DepthLevel{Price: o.Price, Cumulative: *c})
			}
		}
		for _, f := range w.Refused {
			v.Refusals["security check: "+f.Reason]++
			mw.Refused++
		}
		for _, p := range w.P2P {
			if p.Refused != "" {
				v.Refusals["P2P contract: "+p.Refused]++
				mw.Refused++
			}
		}
		v.Windows = append(v.Windows, mw)
	}
	return v
}

// MetersView is /api/v1/meters: LDP meter readings (ldp.json) and the SO's
// LDP estimate of the baseline it coordinated on (ldp_baseline.json).
type MetersView struct {
	Header
	Population *LDPPopulation `json:"population,omitempty"`
	Baseline   *LDPBaseline   `json:"baseline,omitempty"`
}

// LDPPopulation is ldp.json's estimates of one population's sum at
// --epsilon, and each mechanism's error against epsilon.
type LDPPopulation struct {
	Meters     int       `json:"meters"`
	Epsilon    float64   `json:"epsilon"`
	Trials     int       `json:"trials"`
	Mechanisms []LDPMech `json:"mechanisms"`
}

// LDPMech is one mechanism's row.
type LDPMech struct {
	Name       string     `json:"name"`
	TruthKW    float64    `json:"sum_truth_kw"`
	EstimateKW float64    `json:"sum_estimate_kw"`
	CI95KW     [2]float64 `json:"sum_ci95_kw"`
	// Epsilons, RMSE and TheoryRMSE: the mean's error at each epsilon.
	Epsilons   []float64 `json:"epsilons"`
	RMSE       []float64 `json:"empirical_rmse_mean_kw"`
	TheoryRMSE []float64 `json:"theoretical_rmse_mean_kw"`
}

// LDPBaseline is the region's baseline as the SO estimated it from LDP
// readings, against the truth, with a 95% band.
type LDPBaseline struct {
	Mechanism     string    `json:"mechanism"`
	EpsilonPerDay float64   `json:"epsilon_per_day"`
	MetersPerBus  int       `json:"meters_per_bus"`
	TrueKW        []float64 `json:"true_kw"`
	EstimateKW    []float64 `json:"estimate_kw"`
	// BandKW is 1.96 times the estimate's standard deviation per slot, the
	// per-bus variances of ldp_baseline.json summed (the buses' meters
	// report independently).
	BandKW    []float64 `json:"band_kw"`
	RMSE      float64   `json:"rmse_kw"`
	TotalRMSE float64   `json:"total_rmse_kw"`
}

// Meters builds the meters view.
func (r *Run) Meters() MetersView {
	v := MetersView{Header: newHeader("gridveil/dashboard-meters/v1")}
	lf, lst := load[ldpFile](r, "ldp.json")
	if v.use(lst, "LDP meter readings") {
		p := &LDPPopulation{Meters: lf.Meters, Epsilon: lf.Epsilon, Trials: lf.Trials}
		for _, m := range lf.Mech {
			lm := LDPMech{Name: m.Name, TruthKW: m.Sum.Truth, EstimateKW: m.Sum.Estimate, CI95KW: m.Sum.CI95}
			for _, s := range m.Sweep {
				lm.Epsilons = append(lm.Epsilons, s.Epsilon)
				lm.RMSE = append(lm.RMSE, s.Empirical)
				lm.TheoryRMSE = append(lm.TheoryRMSE, s.Theoretical)
			}
			p.Mechanisms = append(p.Mechanisms, lm)
		}
		v.Population = p
	}
	bf, bst := load[ldpBaselineFile](r, "ldp_baseline.json")
	if v.use(bst, "the SO's LDP baseline estimate") {
		sol, sst := load[solutionFile](r, "solution.json")
		if v.use(sst, "the true baseline") && sol.SOView == nil {
			v.Absent = append(v.Absent, "the SO's LDP baseline estimate: solution.json has no so_view, so ldp_baseline.json is not of the same run; write both with gridveil sim --baseline ldp")
		} else if sst.Present && sst.Error == "" {
			e := bf.Estimate
			b := &LDPBaseline{Mechanism: e.Mechanism, EpsilonPerDay: e.EpsilonPerDay, MetersPerBus: e.MetersPerBus, TrueKW: sol.BaselineKW,
				EstimateKW: sol.SOView.BaselineKW, RMSE: e.RMSE, TotalRMSE: e.TotalRMSE}
			b.BandKW = make([]float64, len(b.TrueKW))
			for t := range b.BandKW {
				var vs float64
				for _, f := range e.Variance {
					for _, bus := range f {
						if t < len(bus) {
							vs += bus[t]
						}
					}
				}
				b.BandKW[t] = 1.96 * math.Sqrt(vs)
			}
			v.Baseline = b
		}
	}
	return v
}

// HomesView is /api/v1/homes: one home's day from home.json, its meter
// against its load with the NILM attacker's detections, and every
// scheduler's means.
type HomesView struct {
	Header
	Homes      int          `json:"homes"`
	Schedulers []string     `json:"schedulers"`
	Totals     []HomeTotals `json:"totals"`
	Day        *HomeDay     `json:"day,omitempty"`
}

// HomeTotals is one scheduler's means over the homes.
type HomeTotals struct {
	Scheduler string  `json:"scheduler"`
	Cost      float64 `json:"cost_mean"`
	R2        float64 `json:"r2_mean"`
	F1        float64 `json:"f1_mean"`
	F1Prior   float64 `json:"f1_prior_mean"`
}

// HomeDay is one home under one scheduler.
type HomeDay struct {
	Home      int       `json:"home"`
	Scheduler string    `json:"scheduler"`
	DT        float64   `json:"dt_hours"`
	LoadKW    []float64 `json:"load_kw"`
	MeterKW   []float64 `json:"meter_kw"`
	F1        float64   `json:"f1"`
	Detector  string    `json:"detector"`
	// Truth and Detected are appliance -> [start, end) slot intervals.
	Truth    map[string][][2]int `json:"truth,omitempty"`
	Detected map[string][][2]int `json:"detected,omitempty"`
}

// Homes builds the homes view for home index and scheduler ("": the
// first of the file).
func (r *Run) Homes(home int, scheduler string) (HomesView, error) {
	v := HomesView{Header: newHeader("gridveil/dashboard-homes/v1")}
	h, st := load[homeFile](r, "home.json")
	if !v.use(st, "homes") {
		return v, nil
	}
	v.Homes, v.Schedulers = h.Homes, h.Schedulers
	for _, s := range h.Schedulers {
		t := h.Totals[s]
		v.Totals = append(v.Totals, HomeTotals{Scheduler: s, Cost: t.Cost.Mean, R2: t.R2.Mean, F1: t.F1.Mean, F1Prior: t.F1Prior.Mean})
	}
	if len(h.HomeDays) == 0 {
		v.Absent = append(v.Absent, "a home's day: home.json was written with --no-series")
		return v, nil
	}
	if home < 0 || home >= len(h.HomeDays) {
		return v, fmt.Errorf("home %d: home.json has homes 0 to %d", home, len(h.HomeDays)-1)
	}
	if scheduler == "" && len(h.Schedulers) > 0 {
		scheduler = h.Schedulers[0]
	}
	hd := h.HomeDays[home]
	res, ok := hd.Results[scheduler]
	if !ok {
		names := make([]string, 0, len(hd.Results))
		for s := range hd.Results {
			names = append(names, s)
		}
		sort.Strings(names)
		return v, fmt.Errorf("scheduler %q: home.json has %s", scheduler, strings.Join(names, ", "))
	}
	d := &HomeDay{Home: home, Scheduler: scheduler, DT: h.DT, LoadKW: hd.LoadKW, MeterKW: res.MeterKW, F1: res.F1, Detector: res.F1By, Truth: hd.Truth,
		Detected: res.Detected[res.F1By]}
	if hd.Truth == nil {
		v.Absent = append(v.Absent, "the appliances' ground truth and the attacker's detections: home.json was written without --ground-truth")
	}
	v.Day = d
	return v, nil
}
