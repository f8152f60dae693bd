package sim

import (
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"testing"
)

// instanceFile is the part of instance.json the true-grid check reads.
type instanceFile struct {
	SBase   float64 `json:"s_base_kva"`
	Slots   int     `json:"slots"`
	DT      float64 `json:"dt_hours"`
	VMin    float64 `json:"vmin_pu"`
	Feeders []struct {
		Name  string  `json:"name"`
		V0    float64 `json:"v0_pu"`
		Buses []struct {
			Name     string    `json:"name"`
			Parent   string    `json:"parent"`
			R        float64   `json:"r_pu"`
			X        float64   `json:"x_pu"`
			BaseKW   []float64 `json:"baseline_kw"`
			BaseKVar []float64 `json:"baseline_kvar"`
		} `json:"buses"`
	} `json:"feeders"`
	EVs []struct {
		ID     string `json:"id"`
		Feeder string `json:"feeder"`
		Bus    string `json:"bus"`
	} `json:"evs"`
}

// solutionFile is the part of solution.json the true-grid check reads.
type solutionFile struct {
	Converged  bool                 `json:"converged"`
	Baseline   []float64            `json:"baseline_kw"`
	Aggregate  []float64            `json:"aggregate_kw"`
	EVEnergy   float64              `json:"ev_grid_energy_kwh"`
	Schedules  map[string][]float64 `json:"schedules"`
	Voltages   map[string][]float64 `json:"voltages_pu"`
	MinVoltage float64              `json:"min_voltage_pu"`
	Violations int                  `json:"violations"`
	SOView     *struct {
		Why       string               `json:"why"`
		Baseline  []float64            `json:"baseline_kw"`
		Aggregate []float64            `json:"aggregate_kw"`
		Voltages  map[string][]float64 `json:"voltages_pu"`
	} `json:"so_view"`
}

// trueGrid recomputes, from instance.json and solution.json alone and
// without gridveil's code, the aggregate (every bus's baseline plus every
// schedule) and every voltage by the dense LinDistFlow formula of
// docs/FORMATS.md, V_j^2 = v0^2 - (2/s_base) sum_k (R_jk p_k + X_jk q_k).
func trueGrid(t *testing.T, in *instanceFile, sol *solutionFile) (agg []float64, volt map[string][]float64, energy float64) {
	t.Helper()
	T := in.Slots
	agg = make([]float64, T)
	volt = map[string][]float64{}
	for _, f := range in.Feeders {
		n := len(f.Buses)
		idx := map[string]int{}
		for i, b := range f.Buses {
			idx[b.Name] = i
		}
		// onPath[j][i]: the line into bus i lies on the slack-to-j path.
		onPath := make([][]bool, n)
		for j := range onPath {
			onPath[j] = make([]bool, n)
			for k := j; k != 0; k = idx[f.Buses[k].Parent] {
				onPath[j][k] = true
			}
		}
		p := make([][]float64, n)
		for b := range f.Buses {
			p[b] = append([]float64(nil), f.Buses[b].BaseKW...)
			for tt, v := range f.Buses[b].BaseKW {
				agg[tt] += v
			}
		}
		for _, ev := range in.EVs {
			if ev.Feeder != f.Name {
				continue
			}
			x, ok := sol.Schedules[ev.ID]
			if !ok || len(x) != T {
				t.Fatalf("solution.json: schedule of %s missing or of the wrong length", ev.ID)
			}
			for tt, v := range x {
				p[idx[ev.Bus]][tt] += v
				agg[tt] += v
				energy += v * in.DT
			}
		}
		for j := 1; j < n; j++ {
			vj := make([]float64, T)
			for tt := 0; tt < T; tt++ {
				v2 := f.V0 * f.V0
				for k := 1; k < n; k++ {
					var r, x float64
					for i := 1; i < n; i++ {
						if onPath[j][i] && onPath[k][i] {
							r += f.Buses[i].R
							x += f.Buses[i].X
						}
					}
					v2 -= 2 / in.SBase * (r*p[k][tt] + x*f.Buses[k].BaseKVar[tt])
				}
				vj[tt] = math.Sqrt(v2)
			}
			volt[f.Name+"/"+f.Buses[j].Name] = vj
		}
	}
	return agg, volt, energy
}

// TestDayTrueGrid: with a noisy mechanism or an LDP baseline,
// solution.json's aggregate, voltages and minimum are the true grid's,
// recomputed here from the files alone; what the SO believed is in
// so_view, and the summary prints the true figures with the SO's labelled.
// An exact run has no so_view and the same true-grid fields.
func TestDayTrueGrid(t *testing.T) {
	for _, c := range []struct {
		name string
		edit func(*Config)
	}{
		{"dp", func(c *Config) { c.Privacy.Mechanism = "dp" }},
		{"obfuscation", func(c *Config) { c.Privacy.Mechanism, c.Privacy.Iterations = "obfuscation", 60 }},
		{"ldp", func(c *Config) { c.Baseline.Source, c.Baseline.Epsilon = "ldp", 1 }},
		{"none", nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			d := runDay(t, "ieee13-paper", c.edit)
			files := dayFiles(t, d)
			var summary strings.Builder
			d.PrintSummary(&summary)
			out := summary.String()
			var in instanceFile
			var sol solutionFile
			if err := json.Unmarshal(files["instance.json"], &in); err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal(files["solution.json"], &sol); err != nil {
				t.Fatal(err)
			}
			agg, volt, energy := trueGrid(t, &in, &sol)
			worst := 0.0 // how far the SO's view is from the grid
			for tt := range agg {
				if math.Abs(sol.Aggregate[tt]-agg[tt]) > 1e-9*agg[tt] {
					t.Fatalf("slot %d: aggregate_kw %v, true baseline + schedules %v", tt, sol.Aggregate[tt], agg[tt])
				}
				if sol.SOView != nil {
					worst = math.Max(worst, math.Abs(sol.SOView.Aggregate[tt]-agg[tt]))
				}
			}
			minV, below := math.Inf(1), 0
			for key, want := range volt {
				got := sol.Voltages[key]
				if len(got) != len(want) {
					t.Fatalf("voltages_pu[%s]: %d values, want %d", key, len(got), len(want))
				}
				for tt := range want {
					if math.Abs(got[tt]-want[tt]) > 1e-9 {
						t.Fatalf("voltages_pu[%s][%d] = %v, dense LinDistFlow on the true grid %v", key, tt, got[tt], want[tt])
					}
					minV = math.Min(minV, want[tt])
					if want[tt] < in.VMin-1e-6 {
						below++
					}
				}
			}
			if math.Abs(sol.MinVoltage-minV) > 1e-9 || sol.Violations != below || math.Abs(sol.EVEnergy-energy) > 1e-6*energy {
				t.Fatalf("min_voltage_pu %v (true %v), violations %d (true %d), ev_grid_energy_kwh %v (true %v)", sol.MinVoltage, minV, sol.Violations, below, sol.EVEnergy, energy)
			}
			// The report's figures are the true grid too: the load figure's
			// energy and the voltage figure's margin.
			html := files["report.html"]
			if want := fmt.Sprintf("EVs draw %.1f kWh", energy); !strings.Contains(string(html), want) || below == 0 && strings.Contains(string(html), "The limit is violated") {
				t.Fatalf("report.html lacks %q or reports a violation the true grid does not have", want)
			}
			if !strings.Contains(out, "bus-slot(s) below vmin") {
				t.Fatalf("summary lacks the true grid's violation count:\n%s", out)
			}
			if c.name == "none" {
				if sol.SOView != nil {
					t.Fatal("an exact run on true baselines writes so_view: its SO's view is the grid")
				}
				if strings.Contains(out, "SO's view") {
					t.Fatalf("summary of an exact run shows an SO's view:\n%s", out)
				}
				return
			}
			// The mechanism really makes the SO's view differ: otherwise the
			// checks above would pass on the old files too.
			if sol.SOView == nil || sol.SOView.Why == "" || worst < 1 {
				t.Fatalf("so_view %v: the SO's view is within %.3g kW of the grid", sol.SOView != nil, worst)
			}
			if c.name == "ldp" {
				differs := false
				for tt, v := range sol.SOView.Baseline {
					differs = differs || math.Abs(v-sol.Baseline[tt]) > 1e-9
				}
				if !differs {
					t.Fatal("so_view.baseline_kw equals the true baseline in an LDP run")
				}
			}
			if !strings.Contains(out, "SO's view    not the grid") {
				t.Fatalf("summary does not label the SO's view:\n%s", out)
			}
			lo, hi := math.Inf(1), math.Inf(-1)
			for _, v := range agg {
				lo, hi = math.Min(lo, v), math.Max(hi, v)
			}
			if want := fmt.Sprintf("with EVs %.0f-%.0f kW", lo, hi); !strings.Contains(out, want) {
				t.Fatalf("summary lacks the true load %q:\n%s", want, out)
			}
		})
	}
}
