package charging_test

import (
	"os"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/gridveil/gridveil/charging"
	"github.com/gridveil/gridveil/scenario"
)

// cpuSeconds is the process's user plus system CPU time so far.
func cpuSeconds() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

// copyGBs is the bandwidth of a plain copy far beyond the caches, bytes
// read plus bytes written per second (best of five), in GB/s.
func copyGBs() float64 {
	const n = 256 << 20
	src, dst := make([]float64, n/8), make([]float64, n/8)
	for i := range src {
		src[i] = float64(i)
	}
	best := 0.0
	for range 5 {
		t0 := time.Now()
		copy(dst, src)
		best = max(best, 2*float64(n)/time.Since(t0).Seconds())
	}
	return best / 1e9
}

// BenchmarkRegionSolve solves the ieee13-region scenario (96 slots) to
// convergence at GRIDVEIL_BENCH_EVS vehicles (default 10^5; the issue's
// size is 1000000) and reports what one iteration costs in steady use,
// set-up excluded: the process CPU seconds per iteration (cpu-s/iter, both
// cores' work), the wall time per iteration (wall-ms/iter), the bytes an
// iteration must move at the least (every plugged-in slot of every
// schedule read and written once, 16 bytes: MB/iter), a copy's bandwidth
// measured in the same run (copy-GB/s) and the distance to that bound
// (x-bound: the wall time per iteration over MB/iter / copy bandwidth).
// ns/op is one whole solve with its set-up.
func BenchmarkRegionSolve(b *testing.B) {
	n := 100_000
	if s := os.Getenv("GRIDVEIL_BENCH_EVS"); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil || v <= 0 {
			b.Fatalf("GRIDVEIL_BENCH_EVS=%q: give a positive number of vehicles", s)
		}
		n = v
	}
	spec, err := scenario.Load("ieee13-region")
	if err != nil {
		b.Fatal(err)
	}
	p, _, err := scenario.Build(spec, 1, n)
	if err != nil {
		b.Fatal(err)
	}
	bytes := 0.0
	for i := range p.EVs {
		bytes += 16 * float64(p.EVs[i].Depart-p.EVs[i].Arrive)
	}
	var cpu, wall float64
	var iters int
	for b.Loop() {
		var c0, c1 float64
		var w0, w1 time.Time
		var first, last int
		sol, err := charging.Solve(p, charging.Options{Progress: func(st charging.Stats) {
			c, w := cpuSeconds(), time.Now()
			if first == 0 {
				first, c0, w0 = st.Iter, c, w
			}
			last, c1, w1 = st.Iter, c, w
		}})
		if err != nil || !sol.Converged {
			b.Fatalf("%d EVs: not converged in %d iterations: %v", n, sol.Iterations, err)
		}
		cpu += c1 - c0
		wall += w1.Sub(w0).Seconds()
		iters += last - first
		b.ReportMetric(float64(sol.Iterations), "iterations")
	}
	bw := copyGBs()
	perIter := wall / float64(iters)
	b.ReportMetric(cpu/float64(iters), "cpu-s/iter")
	b.ReportMetric(1e3*perIter, "wall-ms/iter")
	b.ReportMetric(bytes/1e6, "MB/iter")
	b.ReportMetric(bw, "copy-GB/s")
	b.ReportMetric(perIter/(bytes/(bw*1e9)), "x-bound")
}
