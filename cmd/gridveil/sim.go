package main

import (
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"runtime"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"golang.org/x/term"

	"github.com/gridveil/gridveil/aggregate"
	"github.com/gridveil/gridveil/charging"
	"github.com/gridveil/gridveil/rundir"
	"github.com/gridveil/gridveil/scenario"
)

type simFlags struct {
	scenario    string
	out         string
	seed        uint64
	evs         int
	noSchedules bool
	maxIter     int
	workers     int
	quiet       bool
	priv        privacyFlags
	base        baselineFlags
	mkt         marketFlags
	v2g         v2gFlags
}

func newSimCmd() *cobra.Command {
	var f simFlags
	cmd := &cobra.Command{
		Use:   "sim",
		Short: "Run a coordinated-charging simulation and write its files and report",
		Long: `sim builds a scenario (a built-in name, a scenario YAML file or an
instance.json of an earlier run), runs decentralized valley filling with
voltage limits on it, and writes into --out:

  instance.json   the problem, enough to rebuild it without gridveil
  solution.json   schedules, aggregate load, voltages and multipliers
  run.json        timings, machine facts and every run parameter (varies between runs)
  report.html     a self-contained report with figures
  manifest.json   the files this run wrote; a later run into --out removes
                  the ones it does not write again, and refuses files gridveil
                  did not write unless --force

The same scenario and seed give the same instance.json and solution.json,
byte for byte. A run that did not converge still writes its files (they say
converged: false) and exits with status 3, whatever the mechanism: noisy
ones (obfuscation, dp) never pass the exact stopping test, so they always
do. Built-in scenarios: ` + strings.Join(scenario.Builtins(), ", ") + `.`,
		Example: `  gridveil sim
  gridveil sim --scenario ieee13-stressed --out out/stressed
  gridveil sim --scenario ieee13-paper --evs 10000 --seed 7 --out out/region
  gridveil sim --privacy masking --mask-drop 0.05
  gridveil sim --privacy-compare --out out/privacy`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runSim(cmd, &f)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.scenario, "scenario", "ieee13-paper", "built-in scenario name, scenario YAML file, or instance.json")
	fl.StringVar(&f.out, "out", "out", "directory for the output files (created if missing)")
	fl.Uint64Var(&f.seed, "seed", 0, "random seed for the scenario's draws (default: the scenario's own seed)")
	fl.IntVar(&f.evs, "evs", 0, "number of EVs: tile as many feeders as it takes (default: the scenario's)")
	fl.BoolVar(&f.noSchedules, "no-schedules", false, "leave per-EV schedules out of solution.json (for very large runs)")
	fl.IntVar(&f.maxIter, "max-iter", 5000, "iteration limit")
	fl.IntVar(&f.workers, "workers", 0, "goroutines for the EV updates (default: all cores); results do not depend on it")
	fl.BoolVarP(&f.quiet, "quiet", "q", false, "print nothing but errors")
	f.priv.register(fl)
	f.base.register(fl)
	f.mkt.register(fl)
	f.v2g.register(fl)
	addForceFlag(fl)
	return cmd
}

func runSim(cmd *cobra.Command, f *simFlags) error {
	stdout, stderr := cmd.OutOrStdout(), cmd.ErrOrStderr()
	if f.quiet {
		stdout = io.Discard
	}
	// Every count is checked where it is given: a zero or negative value
	// would otherwise fall back to a default or be clamped silently.
	if f.evs < 0 || f.evs == 0 && cmd.Flags().Changed("evs") {
		return fmt.Errorf("--evs %d: give a positive number of EVs, or leave --evs out for the scenario's own fleet", f.evs)
	}
	if f.workers < 0 {
		return fmt.Errorf("--workers %d: give a positive number of goroutines, or 0 for one per core", f.workers)
	}
	if f.maxIter <= 0 {
		return fmt.Errorf("--max-iter %d: give a positive iteration limit", f.maxIter)
	}
	if f.priv.iterations <= 0 {
		return fmt.Errorf("--iterations %d: give a positive number of iterations for the noisy mechanisms", f.priv.iterations)
	}
	t0 := time.Now()
	var (
		p    *charging.Problem
		meta *scenario.Meta
		err  error
	)
	if strings.HasSuffix(f.scenario, ".json") {
		if cmd.Flags().Changed("seed") || f.evs > 0 || cmd.Flags().Changed("v2g-share") {
			return errors.New("--seed, --evs and --v2g-share do not apply to an instance.json, which fixes every vehicle; give a scenario instead")
		}
		var file *os.File
		file, err = os.Open(f.scenario)
		if err != nil {
			return fmt.Errorf("reading instance: %w", err)
		}
		p, meta, err = scenario.ReadInstance(file)
		file.Close()
		if err != nil {
			return fmt.Errorf("%s: %w", f.scenario, err)
		}
	} else {
		spec, err := scenario.Load(f.scenario)
		if err != nil {
			return err
		}
		seed := spec.Seed
		if cmd.Flags().Changed("seed") {
			seed = f.seed
		}
		if cmd.Flags().Changed("v2g-share") {
			if !(f.v2g.share >= 0 && f.v2g.share <= 1) {
				return fmt.Errorf("--v2g-share %v: give the fraction of vehicles that may discharge, in [0, 1]", f.v2g.share)
			}
			spec.SetV2GShare(f.v2g.share)
		}
		p, meta, err = scenario.Build(spec, seed, f.evs)
		if err != nil {
			return fmt.Errorf("scenario %s: %w", f.scenario, err)
		}
	}
	buildTime := time.Since(t0)
	if f.priv.dumpView != "" && f.priv.dumpView != "so" {
		return fmt.Errorf("--dump-view %q: only \"so\" (what the system operator received) is supported", f.priv.dumpView)
	}
	// Refuse a directory of someone else's files now, once the input is
	// known good, not after a long solve.
	force, _ := cmd.Flags().GetBool("force")
	if err := rundir.Check(f.out, force); err != nil {
		return err
	}
	progress := newProgress(stderr, f.quiet, f.maxIter)
	if f.priv.mechanism == "masking" {
		// Key agreement (and with --mask-auth a certificate per vehicle)
		// takes about 0.3 ms per vehicle on two cores: half a minute at
		// 10^5.
		progress.status(fmt.Sprintf("masking: agreeing keys among %d vehicles...", len(p.EVs)))
	}
	tMech := time.Now()
	mech, err := f.priv.build(f.priv.mechanism, p, meta.Seed, f.priv.dumpView == "so")
	setupTime := time.Since(tMech)
	progress.done()
	if err != nil {
		return err
	}

	opt := f.priv.options(mech, charging.Options{MaxIter: f.maxIter, Workers: f.workers})
	progress.started = time.Now()
	opt.Progress = progress.update
	t1 := time.Now()
	var (
		sol         *charging.Solution
		ldpBaseline *LDPBaselineFile
		soProblem   = p // the problem the SO solved: p, or p on LDP-estimated baselines
	)
	if f.base.source == "true" {
		sol, err = charging.Solve(p, opt)
	} else {
		if f.priv.mechanism != "none" || f.priv.compare {
			progress.done()
			return fmt.Errorf("--baseline ldp runs with --privacy none; combine them in separate runs")
		}
		sol, soProblem, ldpBaseline, err = f.base.solveOnLDP(p, meta.Seed, opt)
	}
	progress.done()
	if err != nil {
		return err
	}
	solveTime := time.Since(t1)
	// What the grid did: the true baselines plus the vehicles' schedules.
	// The solution's own aggregate and voltages are the SO's view, which a
	// noisy mechanism or an estimated baseline makes differ from it.
	res, err := newSimResult(p, soProblem, sol, mech, ldpBaseline != nil)
	if err != nil {
		return err
	}
	extra := &reportExtras{}
	onlySol, onlyGrid, err := f.v2g.solveChargingOnly(p, f.maxIter, f.workers)
	if err != nil {
		return err
	}
	v2g := scenario.NewV2GResult(p, sol, res.grid, onlySol, onlyGrid, !f.noSchedules)
	if v2g != nil {
		extra.lines = append(extra.lines, v2gFigures(p, meta, res, v2g)...)
	}
	if res.so != nil {
		extra.lines = append(extra.lines, soViewFigure(p, meta, res))
	}
	if ldpBaseline != nil {
		extra.tables = append(extra.tables, ldpBaselineTable(ldpBaseline))
	}
	var marketOut *MarketFile
	if f.mkt.on {
		if marketOut, err = f.mkt.runMarket(p, meta, sol); err != nil {
			return err
		}
		extra.tables = append(extra.tables, marketTables(marketOut, meta, p.DT)...)
		extra.lines = append(extra.lines, marketFigures(marketOut, meta, p.DT)...)
		if d := marketDepth(marketOut, meta, p.DT); d != nil {
			extra.curves = append(extra.curves, *d)
		}
	}
	var privacy *Privacy
	if f.priv.compare {
		fmt.Fprintln(stdout, "privacy comparison (one worker per run, so times are CPU time):")
		privacy, err = comparePrivacy(p, meta, &f.priv, stdout)
		if err != nil {
			return err
		}
		extra.tables = append(extra.tables, privacyTable(privacy))
		extra.notes = append(extra.notes, privacyNotes(privacy)...)
		for _, r := range privacy.Mechanisms {
			if r.band != nil {
				extra.band = r.band
			}
		}
	}

	files := map[string]func(io.Writer) error{
		"instance.json": func(w io.Writer) error { return scenario.WriteJSON(w, scenario.NewInstance(p, meta)) },
		"solution.json": func(w io.Writer) error {
			out := scenario.NewSolution(p, meta, sol, res.grid, mech.Name(), !f.noSchedules)
			out.SOView = res.so
			out.V2G = v2g
			return scenario.WriteJSON(w, out)
		},
		"report.html": func(w io.Writer) error { return writeChargingReport(w, p, meta, res, extra) },
		"run.json": func(w io.Writer) error {
			return scenario.WriteJSON(w, map[string]any{
				"schema": "gridveil/run/v1", "build_seconds": buildTime.Seconds(), "solve_seconds": solveTime.Seconds(),
				"seconds_per_iteration": solveTime.Seconds() / float64(max(sol.Iterations, 1)),
				"workers":               opt.Workers, "gomaxprocs": runtime.GOMAXPROCS(0), "go": runtime.Version(),
				"goos": runtime.GOOS, "goarch": runtime.GOARCH,
				"scenario": meta.Scenario, "seed": meta.Seed, "privacy": mech.Name(), "privacy_params": mech.Params(),
				"flags": runFlags(cmd.Flags()),
			})
		},
	}
	if marketOut != nil {
		files["market.json"] = func(w io.Writer) error { return scenario.WriteJSON(w, marketOut) }
	}
	if ldpBaseline != nil {
		files["ldp_baseline.json"] = func(w io.Writer) error { return scenario.WriteJSON(w, ldpBaseline) }
	}
	if privacy != nil {
		files["privacy.json"] = func(w io.Writer) error { return scenario.WriteJSON(w, privacy) }
	}
	if f.priv.dumpView == "so" {
		v := mech.View()
		files["so_view.json"] = func(w io.Writer) error { return scenario.WriteJSON(w, newSOView(p, v)) }
	}
	written, err := writeRun(cmd, f.out, files)
	if err != nil {
		return err
	}
	printSummary(stdout, p, meta, res, solveTime)
	printV2G(stdout, v2g, res.grid.Objective)
	if l := ldpBaseline; l != nil {
		fmt.Fprintf(stdout, "  ldp baseline %s, epsilon %.3g per reading (%.3g per meter over the horizon), %d meters: baseline RMSE %.1f kW per bus-slot;\n               on the true grid the schedules cost %+.3g%% over the true-baseline optimum, %d bus-slots below vmin\n",
			l.Estimate.Mechanism, l.Estimate.EpsilonPerReport, l.Estimate.EpsilonPerDay, l.Estimate.Meters, l.Estimate.RMSE, 100*l.Comparison.RelGap, l.Comparison.Violations)
	}
	if mo := marketOut; mo != nil {
		var trades, failed, contracts int
		var vol, p2p int64
		for _, w := range mo.Day.Windows {
			trades += w.Trades
			failed += w.Failed
			vol += w.Volume
			p2p += w.P2PVolume
			contracts += w.Contracts
		}
		in := mo.Day.Income
		fmt.Fprintf(stdout, "  market       %d stations, %d windows (%s): %d trades and %d P2P contracts, %.1f + %.1f kWh of rights traded, %d matches refused by the security check\n",
			len(mo.Stations), len(mo.Day.Windows), mo.Day.Rule, trades, contracts, float64(vol)/1000, float64(p2p)/1000, failed)
		fmt.Fprintf(stdout, "               the grid company received %.3f: %.3f fees and spread, %.3f congestion fees, %.3f penalties\n",
			float64(in.Total())/1000, float64(in.TradeFees+in.Spread)/1000, float64(in.Congestion)/1000, float64(in.Penalties)/1000)
	}
	if !mech.Exact() {
		fmt.Fprintf(stdout, "  privacy      %s: the SO's sums are noisy, so the run stops after --iterations %d instead of converging\n", mech.Name(), f.priv.iterations)
	} else if mech.Name() == "masking" {
		fmt.Fprintf(stdout, "  privacy      masking: the SO saw only per-bus sums; keys agreed in %s\n", setupTime.Round(time.Millisecond))
	} else if mech.Name() != "none" {
		fmt.Fprintf(stdout, "  privacy      %s: the SO saw only per-bus sums\n", mech.Name())
	}
	printFiles(stdout, written)
	// One rule for every mechanism: a run whose solver did not pass its
	// certified stopping test exits 3, and its files say converged: false.
	// A noisy mechanism never passes it, by design, so its runs always end
	// here; the message says so rather than suggesting a fix.
	if !sol.Converged && !mech.Exact() {
		return &exitError{code: 3, err: fmt.Errorf("did not converge: --privacy %s gives the SO noisy sums, so the exact stopping test cannot pass and the run stopped after --iterations %d as designed; the files in %s are complete and say converged: false (exit status 3 marks every unconverged run; the true grid is in solution.json)", mech.Name(), sol.Iterations, f.out)}
	}
	if !sol.Converged {
		last := sol.History[len(sol.History)-1]
		return &exitError{code: 3, err: fmt.Errorf("did not converge in %d iterations (largest voltage violation %.2g pu, last change %.3g kW); the files in %s say converged: false. If the violation stays positive the vehicles' demands do not fit under vmin: lower the demands or widen their windows; otherwise raise --max-iter", sol.Iterations, math.Max(last.Violation, 0), last.Change, f.out)}
	}
	return nil
}

// writeRun writes a command's run directory through package rundir: all
// files or none, a manifest of what was written, the earlier run's stale
// files removed, and files gridveil did not write refused unless --force.
func writeRun(cmd *cobra.Command, dir string, files map[string]func(io.Writer) error) (*rundir.Result, error) {
	force, _ := cmd.Flags().GetBool("force")
	res, err := rundir.Write(dir, files, rundir.Options{Command: cmd.Name(), Force: force})
	if err != nil {
		return nil, err
	}
	return res, nil
}

// runFlags is every flag of the command with the value it had in this
// run, given or default, so that run.json alone says how to repeat it
// (mask drop rate, threshold, obfuscation m and sigma, DP epsilon...).
func runFlags(fl *pflag.FlagSet) map[string]string {
	out := map[string]string{}
	fl.VisitAll(func(f *pflag.Flag) {
		if f.Name != "help" {
			out[f.Name] = f.Value.String()
		}
	})
	return out
}

// addForceFlag registers --force on a command that writes a run directory.
func addForceFlag(fl *pflag.FlagSet) {
	fl.Bool("force", false, "write into --out even if it holds files no gridveil run recorded (they are kept, except those this run writes)")
}

// printFiles lists every file a run wrote, and the earlier run's files it
// removed or the foreign ones --force left beside it.
func printFiles(w io.Writer, r *rundir.Result) {
	fmt.Fprintf(w, "  files        %s\n", strings.Join(r.Paths(), ", "))
	if len(r.Removed) > 0 {
		fmt.Fprintf(w, "               removed the earlier run's %s\n", strings.Join(r.Removed, ", "))
	}
	if len(r.Foreign) > 0 {
		fmt.Fprintf(w, "               left in place, not from this run: %s\n", strings.Join(r.Foreign, ", "))
	}
}

// progress draws a one-line progress bar on stderr when it is a terminal.
type progress struct {
	w       io.Writer
	on      bool
	max     int
	last    time.Time
	started time.Time
	drawn   bool
	first   float64 // the first iteration's change
}

func newProgress(w io.Writer, quiet bool, max int) *progress {
	on := false
	if f, ok := w.(*os.File); ok && !quiet {
		on = term.IsTerminal(int(f.Fd()))
	}
	return &progress{w: w, on: on, max: max, started: time.Now()}
}

func (p *progress) update(s charging.Stats) {
	if s.Iter == 1 {
		p.first = s.Change
	}
	if !p.on || time.Since(p.last) < 100*time.Millisecond || time.Since(p.started) < 300*time.Millisecond {
		return
	}
	p.last = time.Now()
	// Progress towards convergence, not towards the iteration limit: the
	// largest change falls by about nine orders of magnitude (the solver's
	// relative tolerance) between the first iteration and the last.
	frac := 0.0
	if p.first > 0 && s.Change > 0 {
		frac = math.Log10(p.first/s.Change) / 9
	}
	frac = math.Min(math.Max(frac, float64(s.Iter)/float64(p.max)), 1)
	const width = 30
	n := int(width * frac)
	fmt.Fprintf(p.w, "\r[%s%s] iter %d  change %.3g kW  violation %+.2g pu ", strings.Repeat("#", n), strings.Repeat(".", width-n), s.Iter, s.Change, s.Violation)
	p.drawn = true
}

// status shows msg on the progress line until the next update or done.
func (p *progress) status(msg string) {
	if !p.on {
		return
	}
	fmt.Fprintf(p.w, "\r\033[K%s", msg)
	p.drawn = true
}

func (p *progress) done() {
	if p.drawn {
		fmt.Fprint(p.w, "\r\033[K")
		p.drawn = false
	}
}

// simResult is a finished run: the solver's record, the grid's true state
// under its schedules, and, when they can differ, what the SO believed.
type simResult struct {
	sol  *charging.Solution
	grid *charging.GridState
	so   *scenario.SOView // nil when the SO's view is the grid's (exact sums on true baselines)
	// soPriced counts the voltage limits the SO priced (mu > 0): the
	// binding limits when its view is the grid's, its belief otherwise.
	soPriced int
	command  string // the command whose summary this is ("" for sim)
}

func newSimResult(p, soProblem *charging.Problem, sol *charging.Solution, mech aggregate.Mechanism, ldpBaseline bool) (*simResult, error) {
	g, err := charging.Evaluate(p, sol.Schedules)
	if err != nil {
		return nil, err
	}
	r := &simResult{sol: sol, grid: g}
	for fi := range sol.Mu {
		for b := 1; b < len(sol.Mu[fi]); b++ {
			for _, m := range sol.Mu[fi][b] {
				if m > 0 {
					r.soPriced++
				}
			}
		}
	}
	var why []string
	if !mech.Exact() {
		why = append(why, fmt.Sprintf("--privacy %s: the per-bus sums the SO received are noisy", mech.Name()))
	}
	if ldpBaseline {
		why = append(why, "--baseline ldp: the SO solved on its LDP estimates of the baselines")
	}
	if len(why) > 0 {
		r.so = scenario.NewSOView(soProblem, sol, strings.Join(why, "; "))
	}
	return r, nil
}

func loadRange(a []float64) (lo, hi float64) {
	lo, hi = math.Inf(1), math.Inf(-1)
	for _, v := range a {
		lo, hi = math.Min(lo, v), math.Max(hi, v)
	}
	return
}

func printSummary(w io.Writer, p *charging.Problem, m *scenario.Meta, r *simResult, solve time.Duration) {
	sol, g := r.sol, r.grid
	bl, bh := loadRange(p.Baseline())
	al, ah := loadRange(g.Aggregate)
	energy := storedEnergy(p, sol)
	where := ""
	if len(p.Feeders) > 0 {
		f := &p.Feeders[g.MinFeeder]
		where = fmt.Sprintf("%s/%s at %s", f.Name, f.Buses[g.MinBus].Name, scenario.SlotClock(m.Start, p.DT, g.MinSlot))
	}
	status := "converged"
	if !sol.Converged {
		status = "NOT converged"
	}
	gap := "n/a"
	if !math.IsNaN(sol.Gap) {
		gap = fmt.Sprintf("%.1e", sol.Gap)
	}
	cmdName := r.command
	if cmdName == "" {
		cmdName = "sim"
	}
	fmt.Fprintf(w, "gridveil %s: %s, seed %d\n", cmdName, m.Scenario, m.Seed)
	fmt.Fprintf(w, "  network      %d feeder(s), %d EVs, %d slots of %g min from %s, vmin %.3f pu\n", len(p.Feeders), len(p.EVs), p.Slots, p.DT*60, m.Start, p.VMin)
	fmt.Fprintf(w, "  solver       %s in %d iterations, %s (%.3g ms/iteration), duality gap %s\n", status, sol.Iterations, solve.Round(time.Microsecond), float64(solve.Microseconds())/1000/float64(max(sol.Iterations, 1)), gap)
	fmt.Fprintf(w, "  EV energy    %.1f kWh stored, %.1f kWh drawn from the grid\n", energy, g.EVEnergy)
	fmt.Fprintf(w, "  load         baseline %.0f-%.0f kW (peak/valley %.2f) -> with EVs %.0f-%.0f kW (%.2f)\n", bl, bh, bh/bl, al, ah, ah/al)
	if r.so == nil {
		fmt.Fprintf(w, "  voltage      min %.4f pu (%s); %d bus-slot(s) below vmin; %d binding limit(s)\n", g.MinVoltage, where, g.Violations, r.soPriced)
	} else {
		fmt.Fprintf(w, "  voltage      min %.4f pu (%s); %d bus-slot(s) below vmin\n", g.MinVoltage, where, g.Violations)
		sl, sh := loadRange(r.so.Aggregate)
		fmt.Fprintf(w, "  SO's view    not the grid (%s):\n               it believed load %.0f-%.0f kW, min voltage %.4f pu, and priced %d limit(s)\n", r.so.Why, sl, sh, r.so.MinVoltage, r.soPriced)
	}
}
