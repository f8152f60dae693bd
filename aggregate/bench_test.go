package aggregate

import (
	"crypto/aes"
	"crypto/cipher"
	"fmt"
	mrand "math/rand/v2"
	"sort"
	"syscall"
	"testing"
	"time"

	"github.com/gridveil/gridveil/charging"
	"github.com/gridveil/gridveil/scenario"
)

// BenchmarkIteration measures one coordination iteration (every EV's
// update plus the mechanism's aggregation) per mechanism on regions of the
// 96-slot scenario, as medians over the iterations of a solve (see
// perIteration), so that set-up (solver and key agreement) is left out.
// 10^5 EVs run only without -short. Compare mechanisms within one run:
// benchstat -col /mech.
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
		for _, name := range []string{"none", "obfuscation", "masking", "masking-single", "shamir", "dp"} {
			b.Run(fmt.Sprintf("mech=%s/evs=%d", name, n), func(b *testing.B) {
				var m Mechanism
				switch name {
				case "none":
					m = NewNone(p, false)
				case "obfuscation":
					m, err = NewObfuscation(p, ObfuscationConfig{}, 1, false)
				case "masking":
					m, err = NewMasking(p, MaskingConfig{}, 1, false)
				case "masking-single":
					// Without self-masks: the honest-but-curious,
					// punctual-network case (MaskingConfig.SingleMask).
					m, err = NewMasking(p, MaskingConfig{SingleMask: true}, 1, false)
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

// BenchmarkMaskPRG measures the mask generators for one 96-slot report:
// the self-mask (ChaCha8 keyed by a fresh seed, as masking uses), the
// fresh AES-128-CTR stream it would otherwise take (a key schedule and two
// allocations), and a pair's persistent AES-CTR stream. The first is the
// floor of double masking's cost: each vehicle and the SO expand one per
// vehicle per iteration.
func BenchmarkMaskPRG(b *testing.B) {
	const slots = 96
	out := make([]uint64, slots)
	zero := make([]uint64, slots)
	var seed [16]byte
	b.Run("self=chacha8", func(b *testing.B) {
		var g mrand.ChaCha8
		for i := 0; b.Loop(); i++ {
			seed[0] = byte(i)
			seedPRG(&g, seed)
			for t := range out {
				out[t] = g.Uint64()
			}
		}
	})
	b.Run("self=aes-ctr-fresh", func(b *testing.B) {
		var iv [aes.BlockSize]byte
		for i := 0; b.Loop(); i++ {
			seed[0] = byte(i)
			blk, err := aes.NewCipher(seed[:])
			if err != nil {
				b.Fatal(err)
			}
			keystream(cipher.NewCTR(blk, iv[:]), out, zero)
		}
	})
	b.Run("pair=aes-ctr", func(b *testing.B) {
		var iv [aes.BlockSize]byte
		blk, err := aes.NewCipher(seed[:])
		if err != nil {
			b.Fatal(err)
		}
		st := cipher.NewCTR(blk, iv[:])
		for b.Loop() {
			keystream(st, out, zero)
		}
	})
}

// BenchmarkMaskingSetup measures masking's set-up on a region of 10^4
// EVs: key pairs and pairwise keys, and with authentication a pseudonym
// certificate, a signature and a batch verification of the bus's list per
// vehicle.
func BenchmarkMaskingSetup(b *testing.B) {
	spec, err := scenario.Load("ieee13-region")
	if err != nil {
		b.Fatal(err)
	}
	const n = 10000
	p, _, err := scenario.Build(spec, 1, n)
	if err != nil {
		b.Fatal(err)
	}
	for _, auth := range []bool{false, true} {
		b.Run(fmt.Sprintf("auth=%v/evs=%d", auth, n), func(b *testing.B) {
			for b.Loop() {
				if _, err := NewMasking(p, MaskingConfig{Authenticate: auth}, 1, false); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/EV")
		})
	}
}
