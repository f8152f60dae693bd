package home

import (
	"fmt"
	"testing"
)

// BenchmarkOptimal times the exact programme on one home-day of 96
// fifteen-minute slots (the target: under 250 ms at 201 levels).
func BenchmarkOptimal(b *testing.B) {
	cfg := DefaultConfig()
	cfg.CommuteProb = 1
	hd, err := NewHomeDay(1, 0, &cfg)
	if err != nil {
		b.Fatal(err)
	}
	for _, k := range []int{201, 401, 1001, 2001} {
		b.Run(fmt.Sprintf("levels=%d", k), func(b *testing.B) {
			for b.Loop() {
				if _, err := (Optimal{Levels: k}).Schedule(hd.Problem); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkHomeDay times everything one home-day costs in `gridveil home`:
// generation, all five schedulers and every metric including the attacks.
func BenchmarkHomeDay(b *testing.B) {
	cfg := DefaultConfig()
	att := testAttacker(b)
	scheds, _ := cfg.Schedulers(nil)
	id := 0
	for b.Loop() {
		hd, err := NewHomeDay(1, id, &cfg)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := Run(hd, scheds, att); err != nil {
			b.Fatal(err)
		}
		id++
	}
}

// BenchmarkBaselines times each online scheduler on one home-day.
func BenchmarkBaselines(b *testing.B) {
	cfg := DefaultConfig()
	hd, err := NewHomeDay(1, 0, &cfg)
	if err != nil {
		b.Fatal(err)
	}
	scheds, _ := cfg.Schedulers([]string{"be", "nill", "stepping", "none"})
	for _, s := range scheds {
		b.Run(s.Name(), func(b *testing.B) {
			for b.Loop() {
				if _, err := s.Schedule(hd.Problem); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
