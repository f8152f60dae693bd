package dashboard

import (
	"fmt"
	"math"
	"sort"
	"strings"

	"github.com/gridveil/gridveil/day"
	"github.com/gridveil/gridveil/runfile"
)

// Header starts every view of the API: its schema, the files it was built
// from and, in plain sentences, what this run lacks for it.
type Header struct {
	Schema string       `json:"schema"`
	Files  []FileStatus `json:"files"`
	Absent []string     `json:"absent"`
}

func newHeader(schema string) Header {
	return Header{Schema: schema, Files: []FileStatus{}, Absent: []string{}}
}

// use records that the view read st, and notes what is lost without it;
// it reports whether the file can be used.
func (h *Header) use(st FileStatus, what string) bool {
	h.Files = append(h.Files, st)
	if !st.Present || st.Error != "" {
		h.Absent = append(h.Absent, absentNote(st, what))
		return false
	}
	return true
}

// bindingEps is the multiplier above which a voltage limit counts as
// binding: the solver's multipliers are exactly 0 where a limit is slack.
const bindingEps = 0.0

// violationTol is solution.json's tolerance for a bus-slot below vmin.
const violationTol = 1e-6

// FeederView is /api/v1/feeder: every feeder's tree with each bus's lowest
// voltage over the horizon against vmin.
type FeederView struct {
	Header
	VMin    float64         `json:"vmin_pu"`
	Start   string          `json:"start"`
	DT      float64         `json:"dt_hours"`
	Slots   int             `json:"slots"`
	Feeders []FeederSummary `json:"feeders"`
}

// FeederSummary is one feeder of a region.
type FeederSummary struct {
	Name string `json:"name"`
	// MinVoltage is the lowest voltage of any bus and slot (null without
	// solution.json), at bus MinBus in slot MinSlot.
	MinVoltage *float64     `json:"min_voltage_pu"`
	MinBus     string       `json:"min_bus"`
	MinSlot    int          `json:"min_slot"`
	Binding    int          `json:"binding_bus_slots"`
	Violations int          `json:"violations"`
	EVs        int          `json:"evs"`
	Buses      []BusSummary `json:"buses"`
}

// BusSummary is one bus of a feeder's tree.
type BusSummary struct {
	Name   string `json:"name"`
	Parent string `json:"parent"`
	Slack  bool   `json:"slack"`
	// MinVoltage is the bus's lowest true voltage over the horizon (the
	// slack bus: its fixed v0); null without solution.json.
	MinVoltage *float64 `json:"min_voltage_pu"`
	MinSlot    int      `json:"min_slot"`
	// BindingSlots counts the slots whose voltage multiplier is positive:
	// the limit shaped the schedule there.
	BindingSlots int     `json:"binding_slots"`
	BelowVMin    int     `json:"slots_below_vmin"`
	EVs          int     `json:"evs"`
	PeakBaseline float64 `json:"peak_baseline_kw"`
}

// Feeder builds the feeder view.
func (r *Run) Feeder() FeederView {
	v := FeederView{Header: newHeader("gridveil/dashboard-feeder/v1")}
	inst, ist := load[instanceFile](r, "instance.json")
	sol, sst := load[solutionFile](r, "solution.json")
	if !v.use(ist, "the feeder tree") {
		return v
	}
	haveSol := v.use(sst, "bus voltages")
	v.VMin, v.Start, v.DT, v.Slots = inst.VMin, inst.Start, inst.DT, inst.Slots
	evs := map[string]int{}
	for _, e := range inst.EVs {
		evs[e.Feeder+"/"+e.Bus]++
	}
	for _, f := range inst.Feeders {
		fs := FeederSummary{Name: f.Name, MinSlot: -1}
		for _, b := range f.Buses {
			key := f.Name + "/" + b.Name
			bs := BusSummary{Name: b.Name, Parent: b.Parent, Slack: b.Parent == "", MinSlot: -1, EVs: evs[key]}
			for _, kw := range b.BaselineKW {
				bs.PeakBaseline = math.Max(bs.PeakBaseline, kw)
			}
			fs.EVs += bs.EVs
			if haveSol {
				if bs.Slack {
					v0 := f.V0
					bs.MinVoltage = &v0
				} else if vs, ok := sol.Voltages[key]; ok {
					for t, x := range vs {
						if bs.MinVoltage == nil || x < *bs.MinVoltage {
							m := x
							bs.MinVoltage, bs.MinSlot = &m, t
						}
						if x < inst.VMin-violationTol {
							bs.BelowVMin++
						}
					}
					for _, mu := range sol.Duals[key] {
						if mu > bindingEps {
							bs.BindingSlots++
						}
					}
				}
				if bs.MinVoltage != nil && !bs.Slack && (fs.MinVoltage == nil || *bs.MinVoltage < *fs.MinVoltage) {
					m := *bs.MinVoltage
					fs.MinVoltage, fs.MinBus, fs.MinSlot = &m, b.Name, bs.MinSlot
				}
				fs.Binding += bs.BindingSlots
				fs.Violations += bs.BelowVMin
			}
			fs.Buses = append(fs.Buses, bs)
		}
		v.Feeders = append(v.Feeders, fs)
	}
	return v
}

// CoordView is /api/v1/coordination for a finished run: the paper's
// figures (baseline and aggregate, Fig. 3; the EVs' load per bus, Fig. 4;
// the lowest feeder's voltages, Fig. 6) and the solver's end state.
type CoordView struct {
	Header
	Scenario    string    `json:"scenario"`
	Seed        uint64    `json:"seed"`
	Privacy     string    `json:"privacy"`
	Start       string    `json:"start"`
	DT          float64   `json:"dt_hours"`
	VMin        float64   `json:"vmin_pu"`
	BaselineKW  []float64 `json:"baseline_kw"`
	AggregateKW []float64 `json:"aggregate_kw"`
	// SOViewAggregateKW is what the SO believed (solution.json so_view, or
	// so.json of gridveil up); SOViewWhy says why it differs.
	SOViewAggregateKW []float64 `json:"so_view_aggregate_kw,omitempty"`
	SOViewWhy         string    `json:"so_view_why,omitempty"`
	Iterations        int       `json:"iterations"`
	Converged         bool      `json:"converged"`
	RelativeGap       *float64  `json:"relative_gap"`
	Objective         float64   `json:"objective"`
	MinVoltage        float64   `json:"min_voltage_pu"`
	MinVoltageAt      string    `json:"min_voltage_at"`
	Violations        int       `json:"violations"`
	// EVLoadByBusKW is the sum of the schedules of each feeder/bus's
	// vehicles per slot: a summary, never one vehicle's series.
	EVLoadByBusKW map[string][]float64 `json:"ev_load_by_bus_kw,omitempty"`
	LowestFeeder  string               `json:"lowest_feeder"`
	// LowestFeederVoltages is bus -> voltage per slot of the feeder with
	// the lowest voltage.
	LowestFeederVoltages map[string][]float64 `json:"lowest_feeder_voltages_pu,omitempty"`
	// MultiplierMax is the largest voltage multiplier of any bus per slot.
	MultiplierMax []float64 `json:"multiplier_max"`
	// Platform is gridveil up's SO record (so.json), when there is one.
	Platform *PlatformSO `json:"platform,omitempty"`
	// Convergence is the history of every iteration (convergence.json),
	// when the run wrote one.
	Convergence *ConvergenceView `json:"convergence,omitempty"`
}

// PlatformSO is what the platform's SO recorded of its day.
type PlatformSO struct {
	Rounds       int            `json:"rounds"`
	Resumed      bool           `json:"resumed"`
	RoundsResent int            `json:"rounds_resent"`
	Refused      map[string]int `json:"refused"`
}

// Coordination builds the finished run's coordination view.
func (r *Run) Coordination() CoordView {
	v := CoordView{Header: newHeader("gridveil/dashboard-coordination/v1")}
	inst, ist := load[instanceFile](r, "instance.json")
	sol, sst := load[solutionFile](r, "solution.json")
	so, ost := load[day.SOResult](r, "so.json")
	haveInst := v.use(ist, "the EVs' buses and the horizon")
	if !v.use(sst, "the finished run's coordination") {
		return v
	}
	v.Scenario, v.Seed, v.Privacy = sol.Scenario, sol.Seed, sol.Privacy
	v.BaselineKW, v.AggregateKW = sol.BaselineKW, sol.AggregateKW
	v.Iterations, v.Converged, v.RelativeGap, v.Objective = sol.Iterations, sol.Converged, sol.RelativeGap, sol.Objective
	v.MinVoltage, v.MinVoltageAt, v.Violations = sol.MinVoltage, sol.MinVoltageAt, sol.Violations
	if sol.SOView != nil {
		v.SOViewAggregateKW, v.SOViewWhy = sol.SOView.AggregateKW, sol.SOView.Why
	}
	if ost.Present {
		v.Files = append(v.Files, ost)
		if ost.Error != "" {
			v.Absent = append(v.Absent, ost.Error)
		} else {
			v.Platform = &PlatformSO{Rounds: so.Rounds, Resumed: so.Resumed, RoundsResent: so.Resent, Refused: so.Refused}
			if v.SOViewAggregateKW == nil {
				v.SOViewAggregateKW, v.SOViewWhy = so.Aggregate, "the platform SO's own record (so.json)"
			}
		}
	}
	r.addConvergence(&v)
	if haveInst {
		v.Start, v.DT, v.VMin = inst.Start, inst.DT, inst.VMin
		if len(sol.Schedules) == 0 {
			v.Absent = append(v.Absent, "EV load per bus: this run was written with --no-schedules")
		} else {
			v.EVLoadByBusKW = map[string][]float64{}
			for _, e := range inst.EVs {
				s, ok := sol.Schedules[e.ID]
				if !ok {
					continue
				}
				key := e.Feeder + "/" + e.Bus
				sum := v.EVLoadByBusKW[key]
				if sum == nil {
					sum = make([]float64, len(s))
				}
				for t, x := range s {
					if t < len(sum) {
						sum[t] += x
					}
				}
				v.EVLoadByBusKW[key] = sum
			}
		}
	}
	if i := strings.Index(sol.MinVoltageAt, "/"); i > 0 {
		v.LowestFeeder = sol.MinVoltageAt[:i]
		v.LowestFeederVoltages = map[string][]float64{}
		for k, vs := range sol.Voltages {
			if strings.HasPrefix(k, v.LowestFeeder+"/") {
				v.LowestFeederVoltages[strings.TrimPrefix(k, v.LowestFeeder+"/")] = vs
			}
		}
	}
	for _, mu := range sol.Duals {
		if v.MultiplierMax == nil {
			v.MultiplierMax = make([]float64, len(mu))
		}
		for t, x := range mu {
			if t < len(v.MultiplierMax) && x > v.MultiplierMax[t] {
				v.MultiplierMax[t] = x
			}
		}
	}
	return v
}

// PrivacyView is /api/v1/privacy: what each adversary of the privacy
// comparison recovers, and what the SO received for one bus.
type PrivacyView struct {
	Header
	Adversaries []string           `json:"adversaries"`
	Mechanisms  []PrivacyMech      `json:"mechanisms"`
	Received    *ReceivedAtBus     `json:"received,omitempty"`
	Buses       []string           `json:"buses,omitempty"`
	EVs         int                `json:"evs"`
	Mechanism   string             `json:"so_view_mechanism,omitempty"`
	Known       map[string]float64 `json:"known,omitempty"`
}

// PrivacyMech is one mechanism's row of privacy.json.
type PrivacyMech struct {
	Mechanism   string             `json:"mechanism"`
	Params      map[string]float64 `json:"params"`
	RMSE        map[string]float64 `json:"rmse_kw"`
	PriorRMSE   float64            `json:"prior_rmse_kw"`
	BusMeanRMSE float64            `json:"bus_mean_rmse_kw"`
	DeviationKW float64            `json:"deviation_kw"`
	Bytes       float64            `json:"bytes_per_ev_iteration"`
}

// ReceivedAtBus is what the SO received from the vehicles of one bus in
// the final iteration, beside each vehicle's true schedule.
type ReceivedAtBus struct {
	Bus       string       `json:"bus"`
	Iteration int          `json:"iteration"`
	SumKW     []float64    `json:"bus_sum_kw"`
	Reports   []ReceivedEV `json:"reports"`
	Shown     int          `json:"shown"`
	Total     int          `json:"total"`
}

// ReceivedEV is one vehicle's report as the SO saw it. Masked words are
// sent as hexadecimal strings: a JSON number would lose their low bits in
// JavaScript.
type ReceivedEV struct {
	EV string `json:"ev"`
	// KW is the first row of values the SO received (obfuscation sends
	// Rows of them, one of which is real).
	KW    []float64 `json:"kw,omitempty"`
	Rows  int       `json:"rows"`
	Words []string  `json:"words,omitempty"`
	InSum *bool     `json:"in_sum,omitempty"`
	// TrueKW is the vehicle's final schedule from solution.json.
	TrueKW []float64 `json:"true_kw,omitempty"`
}

// maxReportsShown bounds the vehicles shown for one bus.
const maxReportsShown = 8

// Privacy builds the privacy view for bus ("" picks the bus with the most
// reports).
func (r *Run) Privacy(bus string) (PrivacyView, error) {
	v := PrivacyView{Header: newHeader("gridveil/dashboard-privacy/v1")}
	pf, pst := load[runfile.Privacy](r, "privacy.json")
	sv, vst := load[runfile.SOViewFile](r, "so_view.json")
	sol, sst := load[solutionFile](r, "solution.json")
	if v.use(pst, "what the adversaries recover") {
		v.Adversaries, v.EVs = pf.Adversaries, pf.EVs
		for _, m := range pf.Mechanisms {
			pm := PrivacyMech{Mechanism: m.Mechanism, Params: m.Params, DeviationKW: m.DeviationKW, Bytes: float64(m.BytesPerEVIter)}
			if m.Attacks != nil {
				pm.RMSE, pm.PriorRMSE, pm.BusMeanRMSE = m.Attacks.RMSE, m.Attacks.Prior, m.Attacks.BusMean
			}
			v.Mechanisms = append(v.Mechanisms, pm)
		}
	}
	if !v.use(vst, "what the SO received") {
		return v, nil
	}
	haveSol := v.use(sst, "the vehicles' true schedules")
	count := map[string]int{}
	for _, rep := range sv.Reports {
		count[rep.Bus]++
	}
	for b := range count {
		v.Buses = append(v.Buses, b)
	}
	sort.Strings(v.Buses)
	if bus == "" {
		for _, b := range v.Buses {
			if bus == "" || count[b] > count[bus] {
				bus = b
			}
		}
	} else if count[bus] == 0 {
		return v, fmt.Errorf("bus %q has no reports in so_view.json; buses with reports: %s", bus, strings.Join(v.Buses, ", "))
	}
	v.Mechanism, v.Known = sv.Mechanism, sv.Known[bus]
	rec := &ReceivedAtBus{Bus: bus, Iteration: sv.Iteration, SumKW: sv.BusSums[bus], Total: count[bus]}
	for _, rep := range sv.Reports {
		if rep.Bus != bus || len(rec.Reports) == maxReportsShown {
			continue
		}
		e := ReceivedEV{EV: rep.EV, InSum: rep.InSum}
		if len(rep.KW) > 0 {
			e.KW, e.Rows = rep.KW[0], len(rep.KW)
		}
		if len(rep.Words) > 0 {
			e.Rows = len(rep.Words)
			for _, w := range rep.Words[0] {
				e.Words = append(e.Words, fmt.Sprintf("%016x", w))
			}
		}
		if haveSol {
			e.TrueKW = sol.Schedules[rep.EV]
		}
		rec.Reports = append(rec.Reports, e)
	}
	rec.Shown = len(rec.Reports)
	v.Received = rec
	return v, nil
}
