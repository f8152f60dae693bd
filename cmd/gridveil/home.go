package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/gridveil/gridveil/home"
	"github.com/gridveil/gridveil/runfile"
	"github.com/gridveil/gridveil/sim"
)

type homeFlags struct {
	out   string
	quiet bool
	run   sim.Homes
}

func newHomeCmd() *cobra.Command {
	var f homeFlags
	cmd := &cobra.Command{
		Use:   "home",
		Short: "Hide household load behind the EV battery: schedulers, privacy metrics and a NILM attacker",
		Long: `home generates --homes household days (appliance-level load, a commute,
the supplier's prices), schedules each home's EV battery so that the smart
meter hides the household's consumption, and scores every schedule: money
cost, R² between meter and load, R² after the best lag, mutual information,
and the F1 of a trained NILM attacker that tries to recover appliance use.

Schedulers: optimal (exact dynamic programme on a SOC grid), be (best
effort), nill (load levelling), stepping, none (the EV is only a car).
Writes into --out:

  home.json     every home's series and metrics, and totals (docs/HOME.md)
  report.html   the comparison table, one home's day, and with --sweep the
                cost-against-privacy front over alpha

The same flags and seed give the same files, byte for byte, whatever
--workers is.`,
		Example: `  gridveil home --homes 100 --out out/home
  gridveil home --homes 200 --sweep --out out/home-sweep
  gridveil home --homes 10000 --no-series --out out/home-10k
  gridveil home --homes 20 --scheduler optimal --alpha 0.1 --tariff flat`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runHome(cmd, &f) },
	}
	fl := cmd.Flags()
	d := sim.DefaultHomes()
	fl.IntVar(&f.run.Homes, "homes", d.Homes, "number of home-days")
	fl.StringVar(&f.out, "out", "out/home", "directory for home.json and report.html (created if missing)")
	fl.StringVar(&f.run.Scheduler, "scheduler", d.Scheduler, "scheduler(s), comma-separated: "+strings.Join(home.SchedulerNames, ", ")+", or all")
	fl.Float64Var(&f.run.Alpha, "alpha", d.Alpha, "preference factor in (0, 1): weight of money against leakage")
	fl.Float64Var(&f.run.Beta, "beta", d.Beta, "money value of one kW² of leakage, >= 0")
	fl.Uint64Var(&f.run.Seed, "seed", d.Seed, "random seed")
	fl.IntVar(&f.run.SlotMinutes, "slot-minutes", d.SlotMinutes, "meter slot length in minutes (divides 1440)")
	fl.BoolVar(&f.run.Sweep, "sweep", d.Sweep, "also solve the optimal scheduler over an alpha sweep and draw the cost-privacy front")
	fl.IntVar(&f.run.Levels, "levels", d.Levels, "SOC grid levels of the optimal scheduler")
	fl.StringVar(&f.run.Tariff, "tariff", d.Tariff, "tou, flat, flat:PRICE, or 24 comma-separated hourly prices from 00:00")
	fl.BoolVar(&f.run.Export, "export", d.Export, "allow the meter to go negative (export at the same price)")
	fl.Float64Var(&f.run.TripKM, "trip-km", d.TripKM, "every commute's round-trip distance in km (default: drawn from 15-80 km per home)")
	fl.Float64Var(&f.run.Commute, "commute", d.Commute, "probability that a home's EV makes the day's trip (0: every EV stays at home)")
	fl.Float64Var(&f.run.BatteryKWh, "battery-kwh", d.BatteryKWh, "EV battery capacity, kWh")
	fl.Float64Var(&f.run.StepKW, "step-kw", d.StepKW, "stepping scheduler's ladder step, kW")
	fl.IntVar(&f.run.TrainHomes, "train-homes", d.TrainHomes, "households the NILM attacker is trained on (disjoint from the scored homes)")
	fl.IntVar(&f.run.Workers, "workers", d.Workers, "goroutines over homes (default: all cores); results do not depend on it")
	fl.BoolVar(&f.run.NoSeries, "no-series", d.NoSeries, "leave per-home series out of home.json (metrics stay), for large runs")
	fl.BoolVar(&f.run.GroundTruth, "ground-truth", d.GroundTruth, "add each home's appliance ground truth and every attack's detections to home.json, enough to recompute the attacker's F1 from the file (about 2.6 kB more per home at 15-minute slots)")
	fl.BoolVarP(&f.quiet, "quiet", "q", false, "print nothing but errors")
	addForceFlag(fl)
	return cmd
}

func runHome(cmd *cobra.Command, f *homeFlags) error {
	stdout, stderr := cmd.OutOrStdout(), cmd.ErrOrStderr()
	if f.quiet {
		stdout = io.Discard
	}
	prog := newHomeProgress(stderr, f.quiet, f.run.Homes)
	run := f.run
	run.Tick = prog.tick
	t0 := time.Now()
	doc, err := sim.RunHomes(run)
	prog.done()
	if err != nil {
		return err
	}
	elapsed := time.Since(t0)
	written, err := sim.WriteHomes(f.out, doc, runOptions(cmd))
	if err != nil {
		return err
	}
	runfile.PrintHomeSummary(stdout, doc, elapsed)
	runfile.PrintFiles(stdout, written)
	return nil
}

// homeProgress counts finished homes on stderr when it is a terminal.
type homeProgress struct {
	mu    sync.Mutex
	w     io.Writer
	on    bool
	total int
	count int
	last  time.Time
}

func newHomeProgress(w io.Writer, quiet bool, total int) *homeProgress {
	on := false
	if fh, ok := w.(*os.File); ok && !quiet {
		on = term.IsTerminal(int(fh.Fd()))
	}
	return &homeProgress{w: w, on: on, total: total}
}

func (p *homeProgress) tick() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.count++
	if p.on && time.Since(p.last) > 200*time.Millisecond {
		p.last = time.Now()
		fmt.Fprintf(p.w, "\rhome-days %d/%d ", p.count, p.total)
	}
}

func (p *homeProgress) done() {
	if p.on {
		fmt.Fprint(p.w, "\r\033[K")
	}
}
