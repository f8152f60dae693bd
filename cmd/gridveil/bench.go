package main

import (
	"bufio"
	"fmt"
	"io"
	"math"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/gridveil/gridveil/aggregate"
	"github.com/gridveil/gridveil/charging"
	"github.com/gridveil/gridveil/scenario"
)

func newBenchCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Measure gridveil on this machine (long runs; see docs/PERFORMANCE.md)",
	}
	cmd.AddCommand(newBenchChargingCmd(), newBenchObfuscationCmd(), newBenchPrivacyCmd(), newBenchAuthCmd())
	return cmd
}

func newBenchChargingCmd() *cobra.Command {
	var (
		sizes   string
		scen    string
		seed    uint64
		workers int
		maxIter int
	)
	cmd := &cobra.Command{
		Use:   "charging",
		Short: "Valley filling on regions of growing size: iterations, time per iteration, peak memory, memory bandwidth",
		Long: `bench charging solves the region scenario at each size in turn and prints,
for each: feeders, iterations to converge, seconds per iteration, peak
resident memory, and the bytes an iteration must move through memory
(each EV's schedule read and written once) divided by its time, next to
this machine's measured copy bandwidth.`,
		Example: `  gridveil bench charging --evs 1000,10000,100000,1000000`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ns, err := parseSizes(sizes)
			if err != nil {
				return err
			}
			spec, err := scenario.Load(scen)
			if err != nil {
				return err
			}
			return benchCharging(cmd.OutOrStdout(), spec, seed, ns, workers, maxIter)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&sizes, "evs", "1000,10000,100000", "comma-separated region sizes in EVs")
	fl.StringVar(&scen, "scenario", "ieee13-region", "scenario whose feeder and fleet are tiled")
	fl.Uint64Var(&seed, "seed", 1, "random seed")
	fl.IntVar(&workers, "workers", 0, "goroutines (default: all cores)")
	fl.IntVar(&maxIter, "max-iter", 2000, "iteration limit")
	return cmd
}

// parseSizes reads --evs: region sizes separated by commas.
func parseSizes(sizes string) ([]int, error) {
	var ns []int
	for _, f := range strings.Split(sizes, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n <= 0 {
			return nil, fmt.Errorf("--evs %q: give positive integers separated by commas", sizes)
		}
		ns = append(ns, n)
	}
	return ns, nil
}

func benchCharging(w io.Writer, spec *scenario.Spec, seed uint64, sizes []int, workers, maxIter int) error {
	bw := copyBandwidth()
	fmt.Fprintf(w, "machine: %d CPUs, GOMAXPROCS %d, %s; memory copy bandwidth %.1f GB/s (read+write)\n", runtime.NumCPU(), runtime.GOMAXPROCS(0), runtime.Version(), bw/1e9)
	const row = "%9v %8v %6v %11v %10v %12v %9v %13v %13v %7v %11v\n"
	fmt.Fprintf(w, row, "EVs", "feeders", "slots", "iterations", "converged", "s/iteration", "solve s", "peak RSS MiB", "MB/iteration", "GB/s", "of copy bw")
	for _, n := range sizes {
		p, _, err := scenario.Build(spec, seed, n)
		if err != nil {
			return err
		}
		runtime.GC()
		debug.FreeOSMemory()
		resetPeakRSS()
		t0 := time.Now()
		sol, err := charging.Solve(p, charging.Options{MaxIter: maxIter, Workers: workers})
		if err != nil {
			return err
		}
		d := time.Since(t0)
		perIter := d.Seconds() / float64(sol.Iterations)
		// Bytes an iteration cannot avoid: every plugged-in slot of every
		// schedule is read and written once.
		var touched float64
		for _, ev := range p.EVs {
			touched += 16 * float64(ev.Depart-ev.Arrive)
		}
		fmt.Fprintf(w, row, n, len(p.Feeders), p.Slots, sol.Iterations, sol.Converged,
			fmt.Sprintf("%.4f", perIter), fmt.Sprintf("%.2f", d.Seconds()), fmt.Sprintf("%.0f", float64(peakRSS())/(1<<20)),
			fmt.Sprintf("%.1f", touched/1e6), fmt.Sprintf("%.2f", touched/perIter/1e9), fmt.Sprintf("%.1f%%", 100*touched/perIter/bw))
	}
	return nil
}

// copyBandwidth measures memory bandwidth with a large copy (bytes read
// plus bytes written per second), the ceiling for a pass over schedules.
func copyBandwidth() float64 {
	const n = 256 << 20 // bytes each way: far beyond the caches
	src, dst := make([]float64, n/8), make([]float64, n/8)
	for i := range src {
		src[i] = float64(i)
	}
	best := 0.0
	for k := 0; k < 5; k++ {
		t0 := time.Now()
		copy(dst, src)
		if bw := 2 * float64(n) / time.Since(t0).Seconds(); bw > best {
			best = bw
		}
	}
	return best
}

// resetPeakRSS restarts the kernel's peak-RSS counter (Linux only; a no-op
// elsewhere), so each size's peak is its own.
func resetPeakRSS() { _ = os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) }

// peakRSS returns the process's peak resident set in bytes (VmHWM), or 0.
func peakRSS() int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.Fields(rest)[0], 10, 64)
			return kb << 10
		}
	}
	return 0
}

func newBenchObfuscationCmd() *cobra.Command {
	var (
		scen  string
		seed  uint64
		iters int
	)
	cmd := &cobra.Command{
		Use:   "obfuscation",
		Short: "Coordination quality and the curious SO's error under obfuscation, over m and sigma",
		Long: `bench obfuscation runs seed 001's obfuscation on a scenario for a grid of m
(values per slot) and sigma (kW) and prints, for each, the final aggregate's
largest distance from the exact optimum, the relative objective gap, the
bus-sum error the SO works with (theory: sigma sqrt(n_b / m)) and the curious
SO's RMSE in recovering each EV (theory: sigma / sqrt(m)).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			spec, err := scenario.Load(scen)
			if err != nil {
				return err
			}
			p, _, err := scenario.Build(spec, seed, 0)
			if err != nil {
				return err
			}
			return benchObfuscation(cmd.OutOrStdout(), p, seed, iters)
		},
	}
	cmd.Flags().StringVar(&scen, "scenario", "ieee13-paper", "scenario")
	cmd.Flags().Uint64Var(&seed, "seed", 1, "random seed")
	cmd.Flags().IntVar(&iters, "iterations", 200, "iterations per run")
	return cmd
}

func benchObfuscation(w io.Writer, p *charging.Problem, seed uint64, iters int) error {
	ref, err := charging.Solve(p, charging.Options{})
	if err != nil {
		return err
	}
	nb := float64(len(p.EVs)) / float64(len(busesWithEVs(p)))
	const row = "%5v %9v %14v %12v %16v %10v %14v %10v\n"
	fmt.Fprintf(w, "%s: %d EVs, %.1f per bus, %d iterations per run; exact optimum in %d iterations\n", "obfuscation", len(p.EVs), nb, iters, ref.Iterations)
	fmt.Fprintf(w, row, "m", "sigma kW", "deviation kW", "obj. gap", "bus-sum err kW", "(theory)", "SO RMSE kW", "(theory)")
	for _, m := range []int{1, 10, 100} {
		for _, sigma := range []float64{0.5, 3, 10} {
			o, err := aggregate.NewObfuscation(p, aggregate.ObfuscationConfig{M: m, Sigma: sigma}, seed, true)
			if err != nil {
				return err
			}
			sol, err := charging.Solve(p, charging.Options{Aggregator: o, MaxIter: iters})
			if err != nil {
				return err
			}
			agg := p.Baseline()
			for _, x := range sol.Schedules {
				for t, v := range x {
					agg[t] += v
				}
			}
			dev := 0.0
			for t := range agg {
				dev = math.Max(dev, math.Abs(agg[t]-ref.Aggregate[t]))
			}
			// The bus-sum error of the last iteration, against the truth.
			v := o.View()
			var ss float64
			var cnt int
			for key, s := range v.BusSums {
				truth := make([]float64, p.Slots)
				for i, ev := range p.EVs {
					f := &p.Feeders[ev.Feeder]
					if f.Name+"/"+f.Buses[ev.Bus].Name == key {
						for t, x := range sol.Schedules[i] {
							truth[t] += x
						}
					}
				}
				for t := range s {
					ss += (s[t] - truth[t]) * (s[t] - truth[t])
					cnt++
				}
			}
			sc, err := aggregate.Attack(o, p, sol)
			if err != nil {
				return err
			}
			fmt.Fprintf(w, row, m, sigma, fmt.Sprintf("%.3g", dev), fmt.Sprintf("%.2e", (charging.Objective(agg)-ref.Objective)/ref.Objective),
				fmt.Sprintf("%.3g", math.Sqrt(ss/float64(cnt))), fmt.Sprintf("%.3g", sigma*math.Sqrt(nb/float64(m))),
				fmt.Sprintf("%.3g", sc.RMSE["so"]), fmt.Sprintf("%.3g", sigma/math.Sqrt(float64(m))))
		}
	}
	return nil
}

func busesWithEVs(p *charging.Problem) map[[2]int]bool {
	m := map[[2]int]bool{}
	for _, ev := range p.EVs {
		m[[2]int{ev.Feeder, ev.Bus}] = true
	}
	return m
}
