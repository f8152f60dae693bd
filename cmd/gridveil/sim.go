package main

import (
	"fmt"
	"io"
	"math"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"golang.org/x/term"

	"github.com/gridveil/gridveil/charging"
	"github.com/gridveil/gridveil/ldp"
	"github.com/gridveil/gridveil/rundir"
	"github.com/gridveil/gridveil/runfile"
	"github.com/gridveil/gridveil/scenario"
	"github.com/gridveil/gridveil/sim"
)

type simFlags struct {
	scenario string
	out      string
	seed     uint64
	evs      int
	v2gShare float64
	quiet    bool
	day      sim.Config
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
  convergence.json  every iteration's objective, change, violation and duality gap
  run.json        timings, machine facts and every run parameter (varies between runs)
  report.html     a self-contained report with figures
  discharge.json  with bidirectional vehicles: the CA's discharge requests,
                  who may discharge, and the settlement (docs/V2G.md)
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
  gridveil sim --privacy-compare --out out/privacy
  gridveil sim --scenario ieee13-v2g --market --out out/v2v`,
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
	fl.BoolVarP(&f.quiet, "quiet", "q", false, "print nothing but errors")
	fl.Float64Var(&f.v2gShare, "v2g-share", 0, "fraction of the drawn vehicles with a battery that may discharge, in [0, 1] (default: the scenario's evs.v2g.share)")
	registerDayFlags(fl, &f.day)
	addForceFlag(fl)
	return cmd
}

// registerDayFlags binds the day's set-up to fl, with package sim's
// defaults.
func registerDayFlags(fl *pflag.FlagSet, c *sim.Config) {
	d := sim.Defaults()
	fl.BoolVar(&c.NoSchedules, "no-schedules", d.NoSchedules, "leave per-EV schedules out of solution.json (for very large runs)")
	fl.IntVar(&c.MaxIter, "max-iter", d.MaxIter, "iteration limit")
	fl.IntVar(&c.Workers, "workers", d.Workers, "goroutines for the EV updates (default: all cores); results do not depend on it")
	registerPrivacyFlags(fl, &c.Privacy, d.Privacy)
	b, bd := &c.Baseline, d.Baseline
	fl.StringVar(&b.Source, "baseline", bd.Source, `where the SO's baseline comes from: "true", or "ldp" (estimated from LDP-perturbed meter readings)`)
	fl.StringVar(&b.Mechanism, "ldp-mechanism", bd.Mechanism, "with --baseline ldp: the meters' mechanism ("+fmt.Sprint(ldp.Names())+")")
	fl.Float64Var(&b.Epsilon, "epsilon", bd.Epsilon, "with --baseline ldp: epsilon of each meter reading (give this or --day-epsilon)")
	fl.Float64Var(&b.DayEpsilon, "day-epsilon", bd.DayEpsilon, "with --baseline ldp: each meter's budget for the whole horizon, split over its readings")
	fl.IntVar(&b.MetersPerBus, "meters-per-bus", bd.MetersPerBus, "with --baseline ldp: household meters behind each loaded bus")
	m, md := &c.Market, d.Market
	fl.BoolVar(&m.On, "market", md.On, "trade charging rights for every 30-minute window through the ledger application (first feeder's stations); writes market.json")
	fl.StringVar(&m.Rule, "market-rule", md.Rule, "clearing rule: uniform, pay-as-bid or mcafee")
	fl.Float64Var(&m.Margin, "market-margin", md.Margin, "the grid company's load margin as a fraction of the stations' demand in each window (seed 003: rights = margin / demand)")
	fl.Int64Var(&m.FeePPM, "market-fee-ppm", md.FeePPM, "fee on each trade's value to the grid company, parts per million")
	fl.Int64Var(&m.Penalty, "market-penalty", md.Penalty, "penalty per kWh of deviation from rights, milli-currency")
	fl.Float64Var(&m.Headroom, "market-headroom", md.Headroom, "share of each bus's voltage headroom the grid company posts for the line security check; below 1 it keeps a reserve and the check refuses matches that would use it")
	fl.BoolVar(&c.V2G.Compare, "v2g-compare", d.V2G.Compare, "with bidirectional vehicles, also solve the day with discharging switched off and report what discharging bought")
	fl.BoolVar(&c.V2G.Request, "v2g-request", d.V2G.Request, "the CA asks the bidirectional vehicles to discharge (auth's sealed Agree/Decline) and only those that agree may; writes discharge.json (false: every bidirectional vehicle may, nothing is settled)")
	fl.Float64Var(&c.V2G.Willing, "v2g-willing", d.V2G.Willing, "share of bidirectional vehicles whose owners agree to the CA's discharge request, each drawn from the seed, in [0, 1]")
	fl.Int64Var(&c.V2G.Price, "v2g-price", d.V2G.Price, "what the grid company pays per kWh discharged to the grid, milli-currency")
	fl.Int64Var(&c.V2G.V2VLimit, "v2v-limit", d.V2G.V2VLimit, "with --market: the most a charging vehicle pays per kWh in the V2V reverse auction, milli-currency")
	fl.Int64Var(&c.V2G.V2VPenalty, "v2v-penalty", d.V2G.V2VPenalty, "with --market: what a V2V seller pays per kWh it delivers short of its awards, milli-currency")
}

// registerPrivacyFlags binds a private aggregation mechanism's choice and
// parameters to fl, with defaults d.
func registerPrivacyFlags(fl *pflag.FlagSet, f *sim.Privacy, d sim.Privacy) {
	fl.StringVar(&f.Mechanism, "privacy", d.Mechanism, "aggregation between EVs and the SO: "+strings.Join(sim.Mechanisms, "|"))
	fl.BoolVar(&f.Compare, "privacy-compare", d.Compare, "run every mechanism on the instance and write privacy.json and a comparison in the report")
	fl.StringVar(&f.DumpView, "dump-view", d.DumpView, `write what a party saw in the final iteration: "so" writes so_view.json`)
	fl.IntVar(&f.Iterations, "iterations", d.Iterations, "iterations for mechanisms with noisy sums (obfuscation, dp), which never meet the exact stopping test (so their runs exit 3)")
	fl.IntVar(&f.Obfuscation.M, "obf-m", d.Obfuscation.M, "obfuscation: values sent per slot")
	fl.Float64Var(&f.Obfuscation.Sigma, "obf-sigma", d.Obfuscation.Sigma, "obfuscation: noise standard deviation, kW")
	fl.Float64Var(&f.Obfuscation.Mu[0], "obf-mu-min", d.Obfuscation.Mu[0], "obfuscation: bus keys mu_b are drawn from [min, max] kW")
	fl.Float64Var(&f.Obfuscation.Mu[1], "obf-mu-max", d.Obfuscation.Mu[1], "obfuscation: see --obf-mu-min")
	fl.IntVar(&f.Masking.Threshold, "mask-threshold", d.Masking.Threshold, "masking: vehicles needed to unmask a bus (0: a majority)")
	fl.Float64Var(&f.Masking.DropRate, "mask-drop", d.Masking.DropRate, "masking: probability that a vehicle's message is lost, in each phase of an iteration (report, unmasking)")
	fl.BoolVar(&f.Masking.Authenticate, "mask-auth", d.Masking.Authenticate, "masking: vehicles sign their mask keys under CA-certified pseudonyms and check the list the LAG relays (false: trust the LAG)")
	fl.BoolVar(&f.Masking.SingleMask, "mask-single", d.Masking.SingleMask, "masking: no self-masks (safe only against a protocol-following SO on a punctual network)")
	fl.IntVar(&f.Shamir.Holders, "shamir-holders", d.Shamir.Holders, "shamir: shareholders (LAGs and the SO)")
	fl.IntVar(&f.Shamir.Threshold, "shamir-threshold", d.Shamir.Threshold, "shamir: shares needed to reconstruct a sum")
	fl.Float64Var(&f.DP.Epsilon, "dp-epsilon", d.DP.Epsilon, "dp: epsilon per iteration")
	fl.Float64Var(&f.DP.Delta, "dp-delta", d.DP.Delta, "dp: delta per iteration")
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
	if err := f.day.Validate(); err != nil {
		return err
	}
	t0 := time.Now()
	var share *float64
	if cmd.Flags().Changed("v2g-share") {
		share = &f.v2gShare
	}
	p, meta, err := sim.Load(f.scenario, f.seed, cmd.Flags().Changed("seed"), f.evs, share)
	if err != nil {
		return err
	}
	buildTime := time.Since(t0)
	// Refuse a directory of someone else's files now, once the input is
	// known good, not after a long solve.
	force, _ := cmd.Flags().GetBool("force")
	if err := rundir.Check(f.out, force); err != nil {
		return err
	}
	progress := newProgress(stderr, f.quiet, f.day.MaxIter)
	c := f.day
	c.Progress = progress.update
	c.Status = func(msg string) {
		if msg == "" {
			progress.done()
			progress.started = time.Now()
			return
		}
		progress.status(msg)
	}
	c.CompareLog = stdout
	d, err := sim.RunDay(p, meta, c)
	progress.done()
	if err != nil {
		return err
	}
	written, err := d.Write(f.out, sim.RunInfo{Build: buildTime, Flags: runFlags(cmd.Flags())}, runOptions(cmd))
	if err != nil {
		return err
	}
	d.PrintSummary(stdout)
	runfile.PrintFiles(stdout, written)
	// One rule for every mechanism: a run whose solver did not pass its
	// certified stopping test exits 3, and its files say converged: false.
	// A noisy mechanism never passes it, by design, so its runs always end
	// here; the message says so rather than suggesting a fix.
	sol, mech := d.Outcome.Solution, d.Mechanism
	if !sol.Converged && !mech.Exact() {
		return &exitError{code: 3, err: fmt.Errorf("did not converge: --privacy %s gives the SO noisy sums, so the exact stopping test cannot pass and the run stopped after --iterations %d as designed; the files in %s are complete and say converged: false (exit status 3 marks every unconverged run; the true grid is in solution.json)", mech.Name(), sol.Iterations, f.out)}
	}
	if !sol.Converged {
		last := sol.History[len(sol.History)-1]
		return &exitError{code: 3, err: fmt.Errorf("did not converge in %d iterations (largest voltage violation %.2g pu, last change %.3g kW); the files in %s say converged: false. If the violation stays positive the vehicles' demands do not fit under vmin: lower the demands or widen their windows; otherwise raise --max-iter", sol.Iterations, math.Max(last.Violation, 0), last.Change, f.out)}
	}
	return nil
}

// runOptions are the command's options for its run directory: its name
// for the manifest, and --force.
func runOptions(cmd *cobra.Command) rundir.Options {
	force, _ := cmd.Flags().GetBool("force")
	return rundir.Options{Command: cmd.Name(), Force: force}
}

// writeRun writes a command's run directory through package rundir: all
// files or none, a manifest of what was written, the earlier run's stale
// files removed, and files gridveil did not write refused unless --force.
func writeRun(cmd *cobra.Command, dir string, files map[string]func(io.Writer) error) (*rundir.Result, error) {
	return rundir.Write(dir, files, runOptions(cmd))
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
