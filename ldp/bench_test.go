package ldp

import (
	"fmt"
	"testing"
)

// The benchmarks run on one goroutine, so their rates are per core. Each
// reports readings/s next to ns/op (one op = one reading, except in
// BenchmarkPerturbAggregate10M, where one op is 10^7 readings).

// benchConfigs are the mechanisms at their default levels.
var benchConfigs = []Config{
	{Mechanism: GRR, Epsilon: 1, MaxKW: 10},
	{Mechanism: OUE, Epsilon: 1, MaxKW: 10},
	{Mechanism: Duchi, Epsilon: 1, MaxKW: 10},
	{Mechanism: Piecewise, Epsilon: 1, MaxKW: 10},
	{Mechanism: Hybrid, Epsilon: 1, MaxKW: 10},
}

const benchChunk = 4096

func benchReadings() []float64 {
	xs := make([]float64, benchChunk)
	rng := newRand(1)
	for i := range xs {
		xs[i] = 10 * rng.Float64()
	}
	return xs
}

func label(c Config) string {
	m, _ := New(c)
	if m.Levels() > 0 {
		return fmt.Sprintf("%s-k%d", c.Mechanism, m.Levels())
	}
	return string(c.Mechanism)
}

// BenchmarkPerturb: the meter's side, one reading per op.
func BenchmarkPerturb(b *testing.B) {
	for _, c := range benchConfigs {
		b.Run(label(c), func(b *testing.B) {
			m := mustNew(b, c)
			xs := benchReadings()
			rng := newRand(2)
			var sink Report
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				sink = m.Perturb(xs[i%benchChunk], rng)
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "readings/s")
			_ = sink
		})
	}
}

// BenchmarkAggregate: the SO's side, AddAll of chunks of reports (with
// their validation), one reading per op.
func BenchmarkAggregate(b *testing.B) {
	for _, c := range benchConfigs {
		b.Run(label(c), func(b *testing.B) {
			m := mustNew(b, c)
			rng := newRand(3)
			reps := make([]Report, benchChunk)
			for i, x := range benchReadings() {
				reps[i] = m.Perturb(x, rng)
			}
			a := m.NewAggregator()
			b.ReportAllocs()
			b.ResetTimer()
			for n := b.N; n > 0; n -= benchChunk {
				if err := a.AddAll(reps[:min(n, benchChunk)]); err != nil {
					b.Fatal(err)
				}
			}
			_ = a.Sum()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "readings/s")
		})
	}
}

// BenchmarkPerturbAggregate10M: 10^7 readings perturbed and aggregated per
// op, streaming through a 4096-report buffer, as one bus-slot of a very
// large population or many small ones would be.
func BenchmarkPerturbAggregate10M(b *testing.B) {
	const total = 10_000_000
	for _, c := range benchConfigs {
		b.Run(label(c), func(b *testing.B) {
			m := mustNew(b, c)
			xs := benchReadings()
			rng := newRand(4)
			reps := make([]Report, benchChunk)
			a := m.NewAggregator()
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				a.Reset()
				for done := 0; done < total; done += benchChunk {
					n := min(benchChunk, total-done)
					for j := 0; j < n; j++ {
						reps[j] = m.Perturb(xs[j], rng)
					}
					if err := a.AddAll(reps[:n]); err != nil {
						b.Fatal(err)
					}
				}
				_ = a.Sum()
			}
			b.ReportMetric(float64(b.N)*total/b.Elapsed().Seconds(), "readings/s")
		})
	}
}

// BenchmarkEstimateBaseline: the whole C5 pipeline on the paper's IEEE 13
// problem, 100 meters at each of its 9 loaded buses, 48 slots (43 200
// readings per op, each also scored with its exact variance).
func BenchmarkEstimateBaseline(b *testing.B) {
	p := paperProblem(b)
	for _, name := range Names() {
		b.Run(string(name), func(b *testing.B) {
			rng := newRand(5)
			opt := BaselineOptions{Mechanism: name, Epsilon: 1, MetersPerBus: 100}
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				if _, _, err := EstimateBaseline(p, opt, rng); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)*9*100*48/b.Elapsed().Seconds(), "readings/s")
		})
	}
}

// BenchmarkAdd: the SO's side one report at a time (Aggregator.Add, with
// its validation), one reading per op.
func BenchmarkAdd(b *testing.B) {
	for _, c := range benchConfigs {
		b.Run(label(c), func(b *testing.B) {
			m := mustNew(b, c)
			rng := newRand(3)
			reps := make([]Report, benchChunk)
			for i, x := range benchReadings() {
				reps[i] = m.Perturb(x, rng)
			}
			a := m.NewAggregator()
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if err := a.Add(reps[i%benchChunk]); err != nil {
					b.Fatal(err)
				}
			}
			_ = a.Sum()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "readings/s")
		})
	}
}
