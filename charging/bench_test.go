package charging_test

import (
	"fmt"
	"testing"

	"github.com/gridveil/gridveil/charging"
	"github.com/gridveil/gridveil/scenario"
)

// BenchmarkSolvePaper times the paper scenario solved to convergence.
func BenchmarkSolvePaper(b *testing.B) {
	spec, err := scenario.Load("ieee13-paper")
	if err != nil {
		b.Fatal(err)
	}
	p, _, err := scenario.Build(spec, 1, 0)
	if err != nil {
		b.Fatal(err)
	}
	var iters int
	for b.Loop() {
		sol, err := charging.Solve(p, charging.Options{})
		if err != nil || !sol.Converged {
			b.Fatal("did not converge", err)
		}
		iters = sol.Iterations
	}
	b.ReportMetric(float64(iters), "iterations")
}

// BenchmarkIteration times one iteration on regions of 96-slot feeders
// (ns/op is per iteration). 10^5 and 10^6 EVs run only without -short;
// `gridveil bench charging` measures them to convergence with peak memory.
func BenchmarkIteration(b *testing.B) {
	spec, err := scenario.Load("ieee13-region")
	if err != nil {
		b.Fatal(err)
	}
	for _, n := range []int{1000, 10000, 100000, 1000000} {
		if n > 10000 && testing.Short() {
			continue
		}
		b.Run(fmt.Sprintf("evs=%d", n), func(b *testing.B) {
			p, _, err := scenario.Build(spec, 1, n)
			if err != nil {
				b.Fatal(err)
			}
			const iters = 10
			b.ResetTimer()
			for b.Loop() {
				if _, err := charging.Solve(p, charging.Options{MaxIter: iters}); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*iters), "ns/iteration")
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*iters*n), "ns/EV-iteration")
		})
	}
}
