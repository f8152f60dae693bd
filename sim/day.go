package sim

import (
	"errors"
	"fmt"
	"io"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/gridveil/gridveil/aggregate"
	"github.com/gridveil/gridveil/charging"
	"github.com/gridveil/gridveil/day"
	"github.com/gridveil/gridveil/rundir"
	"github.com/gridveil/gridveil/runfile"
	"github.com/gridveil/gridveil/scenario"
)

// Config is a simulated day's set-up: gridveil sim's flags. Errors name
// the flag that sets the field.
type Config struct {
	MaxIter     int  // iteration limit (exact mechanisms)
	Workers     int  // goroutines for the EV updates (0: every core); results do not depend on it
	NoSchedules bool // leave per-EV schedules out of solution.json
	Privacy     Privacy
	Baseline    Baseline
	Market      Market
	V2G         V2G
	// Progress, when set, is called after every coordination iteration of
	// the day's solve.
	Progress func(charging.Stats)
	// Status, when set, is told what a long step is doing (the masking
	// key agreement) and "" when a step is over.
	Status func(msg string)
	// CompareLog receives --privacy-compare's line per mechanism (nil:
	// nothing is printed).
	CompareLog io.Writer
}

// Defaults is gridveil sim's default set-up.
func Defaults() Config {
	return Config{
		MaxIter: 5000,
		Privacy: Privacy{
			Mechanism: "none", Iterations: 200,
			Obfuscation: aggregate.ObfuscationConfig{M: 10, Sigma: 3, Mu: [2]float64{0, 10}},
			Masking:     aggregate.MaskingConfig{Authenticate: true},
			Shamir:      aggregate.ShamirConfig{Holders: 3, Threshold: 2},
			DP:          aggregate.DPConfig{Epsilon: 1, Delta: 1e-5},
		},
		Baseline: Baseline{Source: "true", Mechanism: "hybrid", MetersPerBus: 100},
		Market:   Market{Rule: "uniform", Margin: 0.8, FeePPM: 10_000, Penalty: 500, Headroom: 1},
		V2G:      V2G{Compare: true, Request: true, Willing: 0.8, Price: 250, V2VLimit: 450, V2VPenalty: 500},
	}
}

// Validate checks the counts and choices that do not depend on the
// scenario, so that a bad flag is refused before any work.
func (c *Config) Validate() error {
	if c.Workers < 0 {
		return fmt.Errorf("--workers %d: give a positive number of goroutines, or 0 for one per core", c.Workers)
	}
	if c.MaxIter <= 0 {
		return fmt.Errorf("--max-iter %d: give a positive iteration limit", c.MaxIter)
	}
	if c.Privacy.Iterations <= 0 {
		return fmt.Errorf("--iterations %d: give a positive number of iterations for the noisy mechanisms", c.Privacy.Iterations)
	}
	if c.Privacy.DumpView != "" && c.Privacy.DumpView != "so" {
		return fmt.Errorf("--dump-view %q: only \"so\" (what the system operator received) is supported", c.Privacy.DumpView)
	}
	return nil
}

// Load builds a day's problem as package day does (a built-in name, a
// scenario YAML file or an instance.json; seed, when seedSet, replaces the
// scenario's own; evs > 0 tiles feeders for that many vehicles), with
// v2gShare, when not nil, as the share of battery vehicles that may
// discharge.
func Load(name string, seed uint64, seedSet bool, evs int, v2gShare *float64) (*charging.Problem, *scenario.Meta, error) {
	if v2gShare == nil {
		pl, err := day.Load(name, seed, seedSet, evs)
		if err != nil {
			return nil, nil, err
		}
		return pl.Problem, pl.Meta, nil
	}
	if strings.HasSuffix(name, ".json") {
		return nil, nil, errors.New("--seed, --evs and --v2g-share do not apply to an instance.json, which fixes every vehicle; give a scenario instead")
	}
	if !(*v2gShare >= 0 && *v2gShare <= 1) {
		return nil, nil, fmt.Errorf("--v2g-share %v: give the fraction of vehicles that may discharge, in [0, 1]", *v2gShare)
	}
	spec, err := scenario.Load(name)
	if err != nil {
		return nil, nil, err
	}
	if !seedSet {
		seed = spec.Seed
	}
	spec.SetV2GShare(*v2gShare)
	p, m, err := scenario.Build(spec, seed, evs)
	if err != nil {
		return nil, nil, fmt.Errorf("scenario %s: %w", name, err)
	}
	return p, m, nil
}

// Day is a finished simulated day: the instance, the mechanism the
// vehicles and the SO used, the outcome on the true grid, and the
// documents of the steps that ran.
type Day struct {
	Config    Config
	Problem   *charging.Problem
	Meta      *scenario.Meta
	Mechanism aggregate.Mechanism
	Outcome   *runfile.Outcome
	// Optional steps; nil when they did not run.
	V2G         *scenario.V2GResult
	LDPBaseline *runfile.LDPBaseline
	Market      *runfile.Market
	Privacy     *runfile.Privacy
	Discharge   *runfile.Discharge // discharge requests and their settlement
	// Extras are the report's sections beyond the coordination.
	Extras runfile.ReportExtras
	// Setup is the mechanism's set-up time, Solve the coordination's,
	// Request the discharge requests' (authentication included), OnlySolve
	// the charging-only comparison's (in OnlyIterations iterations).
	Setup, Solve, Request, OnlySolve time.Duration
	OnlyIterations                   int
}

// RunDay runs a day of p in one process: the private aggregation
// mechanism's set-up, the coordination (on the true baselines or on LDP
// estimates of them), the evaluation of the schedules on the true grid,
// the charging-only comparison for bidirectional vehicles, the market and
// the privacy comparison, as c asks. The same problem and c give the same
// documents, byte for byte; only Setup and Solve vary.
func RunDay(p *charging.Problem, meta *scenario.Meta, c Config) (*Day, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	status := c.Status
	if status == nil {
		status = func(string) {}
	}
	// Discharge on request first: its answers decide which vehicles the
	// coordination may let discharge, so the day's problem (instance.json)
	// is the one after it.
	if c.V2G.Request && slices.ContainsFunc(p.EVs, func(ev charging.EV) bool { return ev.PDis > 0 }) {
		status("discharge: the CA asks the bidirectional vehicles (auth, in process)...")
	}
	tDis := time.Now()
	p, dis, err := c.V2G.request(p, meta, c.Market.On)
	status("")
	if err != nil {
		return nil, err
	}
	d := &Day{Config: c, Problem: p, Meta: meta, Request: time.Since(tDis)}
	if c.Privacy.Mechanism == "masking" {
		// Key agreement (and with --mask-auth a certificate per vehicle)
		// takes about 0.3 ms per vehicle on two cores: half a minute at
		// 10^5.
		status(fmt.Sprintf("masking: agreeing keys among %d vehicles...", len(p.EVs)))
	}
	tMech := time.Now()
	mech, err := c.Privacy.Build(c.Privacy.Mechanism, p, meta.Seed, c.Privacy.DumpView == "so")
	d.Setup = time.Since(tMech)
	status("")
	if err != nil {
		return nil, err
	}
	d.Mechanism = mech
	opt := c.Privacy.options(mech, charging.Options{MaxIter: c.MaxIter, Workers: c.Workers, Progress: c.Progress})
	t1 := time.Now()
	var (
		sol       *charging.Solution
		soProblem = p // the problem the SO solved: p, or p on LDP-estimated baselines
	)
	if c.Baseline.Source == "true" {
		sol, err = charging.Solve(p, opt)
	} else {
		if c.Privacy.Mechanism != "none" || c.Privacy.Compare {
			return nil, fmt.Errorf("--baseline ldp runs with --privacy none; combine them in separate runs")
		}
		sol, soProblem, d.LDPBaseline, err = c.Baseline.solveOnLDP(p, meta.Seed, opt)
	}
	status("")
	if err != nil {
		return nil, err
	}
	d.Solve = time.Since(t1)
	// What the grid did: the true baselines plus the vehicles' schedules.
	// The solution's own aggregate and voltages are the SO's view, which a
	// noisy mechanism or an estimated baseline makes differ from it.
	res, err := runfile.NewOutcome(p, soProblem, sol, mech, d.LDPBaseline != nil)
	if err != nil {
		return nil, err
	}
	d.Outcome = res
	extra := &d.Extras
	tOnly := time.Now()
	onlySol, onlyGrid, err := c.V2G.solveChargingOnly(p, c.MaxIter, c.Workers)
	if err != nil {
		return nil, err
	}
	if onlySol != nil {
		d.OnlySolve, d.OnlyIterations = time.Since(tOnly), onlySol.Iterations
	}
	d.V2G = scenario.NewV2GResult(p, sol, res.Grid, onlySol, onlyGrid, !c.NoSchedules)
	if d.V2G != nil {
		extra.Lines = append(extra.Lines, runfile.V2GFigures(p, meta, res, d.V2G)...)
	}
	if res.SO != nil {
		extra.Lines = append(extra.Lines, runfile.SOViewFigure(p, meta, res))
	}
	if d.LDPBaseline != nil {
		extra.Tables = append(extra.Tables, runfile.LDPBaselineTable(d.LDPBaseline))
	}
	if c.Market.On {
		if d.Market, err = c.Market.run(p, meta, sol); err != nil {
			return nil, err
		}
		extra.Tables = append(extra.Tables, runfile.MarketTables(d.Market, meta, p.DT)...)
		extra.Lines = append(extra.Lines, runfile.MarketFigures(d.Market, meta, p.DT)...)
		if dd := runfile.MarketDepth(d.Market, meta, p.DT); dd != nil {
			extra.Curves = append(extra.Curves, *dd)
		}
	}
	if dis != nil {
		var v2v map[int]int64
		if d.Market != nil {
			if d.Market.V2V, v2v, err = c.V2G.trade(p, meta, sol, dis); err != nil {
				return nil, err
			}
			extra.Tables = append(extra.Tables, runfile.V2VTable(d.Market.V2V, meta, p.DT))
		}
		if err := dis.settle(p, sol, v2v); err != nil {
			return nil, err
		}
		d.Discharge = dis.doc
		extra.Tables = append(extra.Tables, runfile.DischargeTable(dis.doc))
	}
	if c.Privacy.Compare {
		log := c.CompareLog
		if log == nil {
			log = io.Discard
		}
		fmt.Fprintln(log, "privacy comparison (one worker per run, so times are CPU time):")
		if d.Privacy, err = ComparePrivacy(p, meta, &c.Privacy, log); err != nil {
			return nil, err
		}
		extra.Tables = append(extra.Tables, runfile.PrivacyTable(d.Privacy))
		extra.Notes = append(extra.Notes, runfile.PrivacyNotes(d.Privacy)...)
		for _, r := range d.Privacy.Mechanisms {
			if r.Band != nil {
				extra.Band = r.Band
			}
		}
	}
	return d, nil
}

// RunInfo is what run.json records beyond the day itself: the time the
// scenario took to build and every flag's value.
type RunInfo struct {
	Build time.Duration
	Flags map[string]string
}

// Files are the day's files by name, each a writer of its document:
// instance.json, solution.json, convergence.json, report.html and run.json, and market.json,
// discharge.json, ldp_baseline.json, privacy.json and so_view.json when their steps ran.
// Only run.json holds times.
func (d *Day) Files(info RunInfo) map[string]func(io.Writer) error {
	p, meta, mech, res := d.Problem, d.Meta, d.Mechanism, d.Outcome
	sol := res.Solution
	files := map[string]func(io.Writer) error{
		"instance.json": func(w io.Writer) error { return scenario.WriteJSON(w, scenario.NewInstance(p, meta)) },
		"solution.json": func(w io.Writer) error {
			out := scenario.NewSolution(p, meta, sol, res.Grid, mech.Name(), !d.Config.NoSchedules)
			out.SOView = res.SO
			out.V2G = d.V2G
			return scenario.WriteJSON(w, out)
		},
		"report.html": func(w io.Writer) error { return runfile.WriteChargingReport(w, p, meta, res, &d.Extras) },
		"run.json": func(w io.Writer) error {
			run := map[string]any{
				"schema": "gridveil/run/v1", "build_seconds": info.Build.Seconds(), "solve_seconds": d.Solve.Seconds(),
				"seconds_per_iteration": d.Solve.Seconds() / float64(max(sol.Iterations, 1)),
				"workers":               d.Config.Workers, "gomaxprocs": runtime.GOMAXPROCS(0), "go": runtime.Version(),
				"goos": runtime.GOOS, "goarch": runtime.GOARCH,
				"scenario": meta.Scenario, "seed": meta.Seed, "privacy": mech.Name(), "privacy_params": mech.Params(),
				"flags": info.Flags,
			}
			if d.Discharge != nil {
				run["discharge_request_seconds"] = d.Request.Seconds()
			}
			if d.OnlyIterations > 0 {
				run["charging_only_solve_seconds"] = d.OnlySolve.Seconds()
				run["charging_only_seconds_per_iteration"] = d.OnlySolve.Seconds() / float64(d.OnlyIterations)
			}
			return scenario.WriteJSON(w, run)
		},
	}
	files["convergence.json"] = d.writeConvergence
	if d.Market != nil {
		files["market.json"] = func(w io.Writer) error { return scenario.WriteJSON(w, d.Market) }
	}
	if d.Discharge != nil {
		files["discharge.json"] = func(w io.Writer) error { return scenario.WriteJSON(w, d.Discharge) }
	}
	if d.LDPBaseline != nil {
		files["ldp_baseline.json"] = func(w io.Writer) error { return scenario.WriteJSON(w, d.LDPBaseline) }
	}
	if d.Privacy != nil {
		files["privacy.json"] = func(w io.Writer) error { return scenario.WriteJSON(w, d.Privacy) }
	}
	if d.Config.Privacy.DumpView == "so" {
		v := mech.View()
		files["so_view.json"] = func(w io.Writer) error { return scenario.WriteJSON(w, runfile.NewSOViewFile(p, v)) }
	}
	return files
}

// Write writes the day's files into dir through package rundir: all of
// them or none, with a manifest.
func (d *Day) Write(dir string, info RunInfo, opt rundir.Options) (*rundir.Result, error) {
	return rundir.Write(dir, d.Files(info), opt)
}

// PrintSummary prints the day's summary as gridveil sim does: the true
// grid, the SO's view where it differs, and a line per step that ran.
func (d *Day) PrintSummary(w io.Writer) {
	mech := d.Mechanism
	runfile.PrintSummary(w, "sim", d.Problem, d.Meta, d.Outcome, d.Solve)
	runfile.PrintV2G(w, d.V2G, d.Outcome.Grid.Objective)
	runfile.PrintLDPBaseline(w, d.LDPBaseline)
	runfile.PrintMarket(w, d.Market)
	runfile.PrintDischarge(w, d.Discharge)
	runfile.PrintV2V(w, d.Market)
	if !mech.Exact() {
		fmt.Fprintf(w, "  privacy      %s: the SO's sums are noisy, so the run stops after --iterations %d instead of converging\n", mech.Name(), d.Config.Privacy.Iterations)
	} else if mech.Name() == "masking" {
		fmt.Fprintf(w, "  privacy      masking: the SO saw only per-bus sums; keys agreed in %s\n", d.Setup.Round(time.Millisecond))
	} else if mech.Name() != "none" {
		fmt.Fprintf(w, "  privacy      %s: the SO saw only per-bus sums\n", mech.Name())
	}
}
