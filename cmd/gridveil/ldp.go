package main

import (
	"io"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/gridveil/gridveil/runfile"
	"github.com/gridveil/gridveil/sim"
)

type ldpFlags struct {
	out   string
	quiet bool
	run   sim.LDP
}

// newLDPCmd returns "gridveil ldp": the C5 experiment on a synthetic
// population of household meters.
func newLDPCmd() *cobra.Command {
	var f ldpFlags
	cmd := &cobra.Command{
		Use:   "ldp",
		Short: "Measure LDP smart-meter aggregation: estimates, errors and variances per mechanism",
		Long: `ldp draws a population of household meter readings, lets every meter
perturb its reading with each epsilon-LDP mechanism (grr, oue, duchi,
piecewise, hybrid; docs/ARCHITECTURE.md C5), and has the system operator estimate the
population's sum, mean and (grr, oue) histogram. Each mechanism runs
--trials independent rounds at every epsilon of --epsilons (and --epsilon),
which measures the estimators' variance against the theory. It writes into
--out:

  ldp.json      per mechanism: estimate, truth, error, confidence interval,
                theoretical and empirical variance, histogram, error per epsilon;
                how the readings were drawn (and, with --readings, every one)
  report.html   a self-contained report: the error of every mechanism against
                epsilon, the histograms, and the numbers

Readings: the SCE household profile at --hour times a Gamma(2) factor of mean
1, one per meter, clipped to [0, --max-kw]. The same flags and seed give the
same files, byte for byte. docs/LDP.md documents the mechanisms and ldp.json.`,
		Example: `  gridveil ldp --out out/ldp
  gridveil ldp --meters 100000 --epsilon 0.5 --mechanism duchi,hybrid --out out/ldp
  gridveil ldp --mechanism oue --levels 32 --epsilon 2 --out out/oue`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runLDP(cmd, &f) },
	}
	fl := cmd.Flags()
	d := sim.DefaultLDP()
	fl.IntVar(&f.run.Meters, "meters", d.Meters, "number of household meters")
	fl.Float64Var(&f.run.Epsilon, "epsilon", d.Epsilon, "epsilon of each meter's report, for the detailed results")
	fl.StringVar(&f.run.Mechanism, "mechanism", d.Mechanism, "all, or a comma-separated list of: "+sim.LDPMechanismList())
	fl.IntVar(&f.run.Levels, "levels", d.Levels, "levels k of grr and oue (0: grr 2, oue 16)")
	fl.Float64Var(&f.run.MaxKW, "max-kw", d.MaxKW, "public clip bound of a reading, kW")
	fl.Float64Var(&f.run.Hour, "hour", d.Hour, "clock hour of the readings, 0 <= hour < 24 (18: the SCE evening peak)")
	fl.IntVar(&f.run.Trials, "trials", d.Trials, "independent rounds per mechanism and epsilon (>= 2) for the empirical variance")
	fl.StringVar(&f.run.Epsilons, "epsilons", d.Epsilons, "comma-separated epsilons for the error-against-epsilon figure (--epsilon is added)")
	fl.Uint64Var(&f.run.Seed, "seed", d.Seed, "random seed")
	fl.StringVar(&f.out, "out", filepath.Join("out", "ldp"), "directory for ldp.json and report.html (created if missing)")
	fl.IntVar(&f.run.Workers, "workers", d.Workers, "goroutines (default: all cores); results do not depend on it")
	fl.BoolVar(&f.run.Readings, "readings", d.Readings, "also write every meter's true reading into ldp.json (population.readings_kw, about 19 bytes per meter), to recompute the truth and the errors without regenerating the readings")
	fl.BoolVarP(&f.quiet, "quiet", "q", false, "print nothing but errors")
	addForceFlag(fl)
	return cmd
}

func runLDP(cmd *cobra.Command, f *ldpFlags) error {
	res, err := sim.RunLDP(f.run)
	if err != nil {
		return err
	}
	stdout := cmd.OutOrStdout()
	if f.quiet {
		stdout = io.Discard
	}
	written, err := sim.WriteLDP(f.out, res, runOptions(cmd))
	if err != nil {
		return err
	}
	runfile.PrintLDPSummary(stdout, res)
	runfile.PrintFiles(stdout, written)
	return nil
}
