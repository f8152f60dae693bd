package aggregate

import (
	"fmt"
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

// perIteration reports the cost of one iteration with mechanism m: the
// difference between 20- and 10-iteration solves over 10, so that set-up
// cancels.
func perIteration(b *testing.B, p *charging.Problem, m Mechanism, n int) {
	run := func(k int) time.Duration {
		t0 := time.Now()
		if _, err := charging.Solve(p, charging.Options{Aggregator: m, MaxIter: k, GapTol: 1e-300, RelTol: 1e-300}); err != nil {
			b.Fatal(err)
		}
		return time.Since(t0)
	}
	var per time.Duration
	b.ResetTimer()
	for b.Loop() {
		per += (run(20) - run(10)) / 10
	}
	b.ReportMetric(float64(per.Nanoseconds())/float64(b.N), "ns/iteration")
	b.ReportMetric(float64(per.Nanoseconds())/float64(b.N)/float64(n), "ns/EV-iteration")
}
