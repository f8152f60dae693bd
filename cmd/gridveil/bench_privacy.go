package main

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/gridveil/gridveil/scenario"
	"github.com/gridveil/gridveil/sim"
)

// benchMechanisms are the rows of bench privacy: every mechanism, and
// masking without self-masks, whose cost the C3 target is about.
var benchMechanisms = []string{"none", "obfuscation", "masking", "masking-single", "shamir", "dp"}

func newBenchPrivacyCmd() *cobra.Command {
	var (
		sizes   string
		mechs   string
		scen    string
		seed    uint64
		workers int
	)
	cmd := &cobra.Command{
		Use:   "privacy",
		Short: "Cost of each private aggregation mechanism per coordination iteration, against none",
		Long: `bench privacy builds the region scenario at each size and, for each
mechanism, times its set-up (key agreement, certificates) and 12
coordination iterations: every EV's step and the mechanism's aggregation,
both the EVs' side and the SO's. It prints the median iteration's wall
time, its process CPU time per EV, and that CPU time's ratio to none's in
the same run (CPU time, because other processes on a shared machine
disturb it less than wall time). masking-single is masking without
self-masks (--mask-single). The other mechanisms use sim's defaults.`,
		Example: `  gridveil bench privacy --evs 10000,100000
  gridveil bench privacy --evs 100000 --mechanisms none,masking,masking-single`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ns, err := parseSizes(sizes)
			if err != nil {
				return err
			}
			var names []string
			for _, f := range strings.Split(mechs, ",") {
				name := strings.TrimSpace(f)
				if !slices.Contains(benchMechanisms, name) {
					return fmt.Errorf("--mechanisms: %q is not one of %s", name, strings.Join(benchMechanisms, ", "))
				}
				names = append(names, name)
			}
			spec, err := scenario.Load(scen)
			if err != nil {
				return err
			}
			return benchPrivacy(cmd.OutOrStdout(), spec, seed, ns, names, workers)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&sizes, "evs", "10000,100000", "comma-separated region sizes in EVs")
	fl.StringVar(&mechs, "mechanisms", strings.Join(benchMechanisms, ","), "comma-separated mechanisms to time (none is the reference)")
	fl.StringVar(&scen, "scenario", "ieee13-region", "scenario whose feeder and fleet are tiled")
	fl.Uint64Var(&seed, "seed", 1, "random seed")
	fl.IntVar(&workers, "workers", 0, "goroutines (default: all cores)")
	return cmd
}

func benchPrivacy(w io.Writer, spec *scenario.Spec, seed uint64, sizes []int, names []string, workers int) error {
	// sim's defaults for every mechanism's parameters.
	f := sim.Defaults().Privacy
	const row = "%9v  %-15v %10v %14v %22v %8v\n"
	fmt.Fprintf(w, row, "EVs", "mechanism", "set-up s", "ms/iteration", "CPU ns/EV-iteration", "vs none")
	for _, n := range sizes {
		p, _, err := scenario.Build(spec, seed, n)
		if err != nil {
			return err
		}
		var ref time.Duration
		for _, label := range names {
			mechanism, g := label, f
			if label == "masking-single" {
				mechanism, g.Masking.SingleMask = "masking", true
			}
			t0 := time.Now()
			mech, err := g.Build(mechanism, p, seed, false)
			if err != nil {
				return err
			}
			setup := time.Since(t0)
			wall, cpu, err := sim.IterationTime(p, mech, workers, processCPU)
			if err != nil {
				return fmt.Errorf("%s at %d EVs: %w", label, n, err)
			}
			if label == "none" {
				ref = cpu
			}
			ratio := "-"
			if ref > 0 {
				ratio = fmt.Sprintf("%.2f", float64(cpu)/float64(ref))
			}
			fmt.Fprintf(w, row, n, label, fmt.Sprintf("%.1f", setup.Seconds()), fmt.Sprintf("%.1f", float64(wall.Microseconds())/1000),
				fmt.Sprintf("%.0f", float64(cpu.Nanoseconds())/float64(len(p.EVs))), ratio)
		}
	}
	return nil
}
