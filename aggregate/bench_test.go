package aggregate

import (
	"fmt"
	"sort"
	"syscall"
	"testing"
	"time"

	"github.com/gridveil/gridveil/charging"
	"github.com/gridveil/gridveil/scenario"
)

// BenchmarkIteration measures one coordination iteration (every EV's
// update plus the mechanism's aggregation) per mechanism on regions of the
// 96-slot scenario. ns/iteration is the difference between 20- and
// 10-iteration solves divided by 10, so that set-up (solver and key
// agreement) cancels. 10^5 EVs run only without -short.
func BenchmarkIteration(b *testing.B) {
	spec, err := scenario.Load("ieee13-region")
	if err != nil {
		b.Fatal(err)
	}
	for _, n := range []int{10000, 100000} {
		if n > 10000 && testing.Short() {
			continue
		}
		p, _, err := scenario.Build(spec, 1, n)
		if err != nil {
			b.Fatal(err)
		}
		for _, name := range []string{"none", "obfuscation", "masking", "shamir", "dp"} {
			b.Run(fmt.Sprintf("mech=%s/evs=%d", name, n), func(b *testing.B) {
				var m Mechanism
				switch name {
				case "none":
					m = NewNone(p, false)
				case "obfuscation":
					m, err = NewObfuscation(p, ObfuscationConfig{}, 1, false)
				case "masking":
					m, err = NewMasking(p, MaskingConfig{}, 1, false)
				case "shamir":
					m, err = NewShamir(p, ShamirConfig{}, false)
				case "dp":
					m, err = NewDP(p, DPConfig{}, 1, false)
				}
				if err != nil {
					b.Fatal(err)
				}
				perIteration(b, p, m, n)
			})
		}
	}
}

// BenchmarkMaskingSingle is masking without self-masks, for the
// honest-but-curious, synchronous case (see MaskingConfig.SingleMask).
func BenchmarkMaskingSingle(b *testing.B) {
	spec, _ := scenario.Load("ieee13-region")
	for _, n := range []int{10000, 100000} {
		if n > 10000 && testing.Short() {
			continue
		}
		p, _, _ := scenario.Build(spec, 1, n)
		b.Run(fmt.Sprintf("evs=%d", n), func(b *testing.B) {
			m, err := NewMasking(p, MaskingConfig{SingleMask: true}, 1, false)
			if err != nil {
				b.Fatal(err)
			}
			perIteration(b, p, m, n)
		})
	}
}

// perIteration reports the median wall and CPU time of one iteration with
// mechanism m, timed between the solver's progress callbacks, so that
// set-up (solver and key agreement) is excluded. CPU time (user + system,
// all threads, from getrusage) is the figure to compare on a shared
// machine: other processes inflate wall time but not this process's CPU.
func perIteration(b *testing.B, p *charging.Problem, m Mechanism, n int) {
	var wall, cpu []time.Duration
	b.ResetTimer()
	for b.Loop() {
		var lastWall time.Time
		var lastCPU time.Duration
		opt := charging.Options{Aggregator: m, MaxIter: 12, GapTol: 1e-300, RelTol: 1e-300, Progress: func(charging.Stats) {
			now, c := time.Now(), cpuTime()
			if !lastWall.IsZero() {
				wall = append(wall, now.Sub(lastWall))
				cpu = append(cpu, c-lastCPU)
			}
			lastWall, lastCPU = now, c
		}}
		if _, err := charging.Solve(p, opt); err != nil {
			b.Fatal(err)
		}
	}
	med := func(d []time.Duration) float64 {
		sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
		return float64(d[len(d)/2].Nanoseconds())
	}
	b.ReportMetric(med(wall), "ns/iteration")
	b.ReportMetric(med(cpu)/float64(n), "cpu-ns/EV-iteration")
}

// cpuTime is the process's user plus system time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
