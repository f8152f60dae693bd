package runfile

import (
	"encoding/hex"
	"fmt"
	"maps"
	"math"
	"slices"

	"github.com/gridveil/gridveil/aggregate"
	"github.com/gridveil/gridveil/charging"
	"github.com/gridveil/gridveil/report"
)

// PrivacyRow is one mechanism's line of privacy.json.
type PrivacyRow struct {
	Mechanism        string             `json:"mechanism"`
	Params           map[string]float64 `json:"params"`
	Iterations       int                `json:"iterations"`
	Converged        bool               `json:"converged"`
	DeviationKW      float64            `json:"deviation_kw"`
	ObjectiveGap     float64            `json:"objective_gap_relative"`
	Attacks          *aggregate.Scores  `json:"attacks"`
	BytesPerEVIter   int                `json:"bytes_per_ev_iteration"`
	CPUNsPerEVIter   float64            `json:"cpu_ns_per_ev_iteration"`
	PrivacyLoss      *aggregate.Loss    `json:"privacy_loss,omitempty"`
	FailedUnmaskings int                `json:"failed_unmaskings,omitempty"`
	// Band is the obfuscation figure's data (report.html only).
	Band *report.Band `json:"-"`
}

// Privacy is privacy.json.
type Privacy struct {
	Schema      string       `json:"schema"`
	Scenario    string       `json:"scenario"`
	Seed        uint64       `json:"seed"`
	EVs         int          `json:"evs"`
	Slots       int          `json:"slots"`
	Adversaries []string     `json:"adversaries"`
	Mechanisms  []PrivacyRow `json:"mechanisms"`
}

// PrivacyTable renders the comparison for the report.
func PrivacyTable(pr *Privacy) report.Table {
	t := report.Table{
		Title:  "Privacy: every mechanism on the same instance",
		Header: []string{"mechanism", "deviation kW", "iterations", "SO", "SO, averaged", "eavesdropper", "EV", "EVs colluding", "SO + EVs", "prior", "bytes/EV/iter", "CPU µs/EV/iter"},
	}
	f := func(v float64) string { return fmt.Sprintf("%.3g", v) }
	for _, r := range pr.Mechanisms {
		a := r.Attacks
		t.Rows = append(t.Rows, []string{r.Mechanism, f(r.DeviationKW), fmt.Sprint(r.Iterations),
			f(a.RMSE["so"]), f(a.RMSE["so_history"]), f(a.RMSE["eavesdropper"]), f(a.RMSE["ev"]), f(a.RMSE["evs_colluding"]), f(a.RMSE["so_with_evs"]), f(a.Prior),
			fmt.Sprint(r.BytesPerEVIter), fmt.Sprintf("%.2f", r.CPUNsPerEVIter/1000)})
	}
	t.Caption = "Attack columns: RMSE (kW) of each adversary's estimate of every EV's final schedule; lower means more leakage. " +
		"Prior: every EV charges the fleet average (public). SO, averaged: the SO averages each EV's messages over the last " +
		fmt.Sprint(aggregate.HistoryWindow) + " iterations. Deviation: largest per-slot distance of the true aggregate from the none optimum. " +
		"The SO with all but one EV of a bus recovers the last exactly under any exact sum: that is inherent, not a flaw of a mechanism."
	return t
}

// PrivacyNotes are the report's notes on the comparison.
func PrivacyNotes(pr *Privacy) []string {
	var notes []string
	for _, r := range pr.Mechanisms {
		switch r.Mechanism {
		case "obfuscation":
			notes = append(notes, fmt.Sprintf("Obfuscation (m = %g, sigma = %g kW): a curious SO, which knows each bus key by construction, recovers every EV's schedule to %.3g kW RMSE in a single iteration (theory sigma/sqrt(m) = %.3g kW), and to %.3g kW by averaging the last %d iterations: seed 001's analysis leaves this adversary out.",
				r.Params["m"], r.Params["sigma_kw"], r.Attacks.RMSE["so"], r.Params["sigma_kw"]/math.Sqrt(r.Params["m"]), r.Attacks.RMSE["so_history"], aggregate.HistoryWindow))
		case "dp":
			if l := r.PrivacyLoss; l != nil {
				notes = append(notes, fmt.Sprintf("DP (epsilon %g, delta %g per iteration): over %d iterations the loss is epsilon %.3g by basic composition, or %.3g (delta %g) by zCDP.",
					r.Params["epsilon"], r.Params["delta"], l.Releases, l.BasicEpsilon, l.ZCDPEpsilon, l.ZCDPDeltaUsed))
			}
		case "shamir":
			notes = append(notes, "Shamir: the eavesdropper column assumes the EV's uplinks to the shareholders are not encrypted, so reading them all reconstructs the schedule; with encrypted channels (as the scheme requires) it sees nothing.")
		}
	}
	return notes
}

// SOViewFile is so_view.json.
type SOViewFile struct {
	Schema    string                        `json:"schema"`
	Mechanism string                        `json:"mechanism"`
	Iteration int                           `json:"iteration"`
	Slots     int                           `json:"slots"`
	Params    map[string]float64            `json:"params"`
	Known     map[string]map[string]float64 `json:"known"`
	BusSums   map[string][]float64          `json:"bus_sums_kw"`
	Reports   []SOViewReport                `json:"reports"`
}

// SOViewReport is one vehicle's messages in so_view.json.
type SOViewReport struct {
	EV           string      `json:"ev"`
	Bus          string      `json:"bus"`
	KW           [][]float64 `json:"kw,omitempty"`
	Words        [][]uint64  `json:"words,omitempty"`
	PublicKey    string      `json:"public_key,omitempty"`
	SelfMaskSeed string      `json:"self_mask_seed,omitempty"`
	Correction   []uint64    `json:"correction,omitempty"`
	InSum        *bool       `json:"in_sum,omitempty"`
}

// NewSOViewFile describes what the SO received in the final iteration
// (aggregate.View) for so_view.json.
func NewSOViewFile(p *charging.Problem, v *aggregate.View) *SOViewFile {
	out := &SOViewFile{Schema: "gridveil/so-view/v1", Mechanism: v.Mechanism, Iteration: v.Iteration + 1, Slots: v.Slots, Params: v.Params, Known: v.Known, BusSums: v.BusSums}
	seen := map[int]bool{}
	for i := range v.Reports {
		seen[i] = true
	}
	for i := range v.Words {
		seen[i] = true
	}
	for i := range v.PublicKeys {
		seen[i] = true
	}
	idx := slices.Sorted(maps.Keys(seen))
	for _, i := range idx {
		ev := p.EVs[i]
		f := &p.Feeders[ev.Feeder]
		r := SOViewReport{EV: ev.ID, Bus: f.Name + "/" + f.Buses[ev.Bus].Name, KW: v.Reports[i], Words: v.Words[i], Correction: v.Corrections[i]}
		if k := v.PublicKeys[i]; k != nil {
			r.PublicKey = hex.EncodeToString(k)
		}
		if s := v.Seeds[i]; s != nil {
			r.SelfMaskSeed = hex.EncodeToString(s)
		}
		if in, ok := v.InSum[i]; ok {
			r.InSum = &in
		}
		out.Reports = append(out.Reports, r)
	}
	return out
}
