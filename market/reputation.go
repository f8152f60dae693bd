package market

import (
	"fmt"
	"sort"
)

// Reputation holds each station's reputation in parts per million
// (0..10^6) and turns it into the levels that bound whom a station may
// match (seed 003: the platform ranks nodes by reputation, divides them
// into levels, and gives each node a matchable range).
type Reputation struct {
	Score  map[string]int64 // ppm
	Levels int              // number of levels (default 3)
	Reach  int              // a station may match stations at most Reach levels away (default 1)
}

// Level returns each trader's level, 0 the best: traders sorted by
// descending score (ties by name) and cut into Levels groups of as equal
// size as possible.
func (r *Reputation) Level() map[string]int {
	levels := r.Levels
	if levels <= 0 {
		levels = 3
	}
	names := make([]string, 0, len(r.Score))
	for k := range r.Score {
		names = append(names, k)
	}
	sort.Slice(names, func(i, j int) bool {
		if r.Score[names[i]] != r.Score[names[j]] {
			return r.Score[names[i]] > r.Score[names[j]]
		}
		return names[i] < names[j]
	})
	out := make(map[string]int, len(names))
	for i, n := range names {
		out[n] = i * levels / max(len(names), 1)
	}
	return out
}

// Allowed returns the matching restriction for Clear: two traders may
// trade if their levels differ by at most Reach. Traders without a score
// are at the lowest level.
func (r *Reputation) Allowed() Allowed {
	lv := r.Level()
	reach := r.Reach
	if reach <= 0 {
		reach = 1
	}
	levels := r.Levels
	if levels <= 0 {
		levels = 3
	}
	get := func(k string) int {
		if l, ok := lv[k]; ok {
			return l
		}
		return levels - 1
	}
	return func(buyer, seller string) bool {
		d := get(buyer) - get(seller)
		return d <= reach && -d <= reach
	}
}

// Update moves a station's reputation towards how it delivered: with
// delivered and rights in Wh and rating in ppm (the counterparties'
// average, or -1 for none), the new score is
//
//	(1 - w) * old + w * (delivery score + rating) / 2,
//
// where the delivery score is 10^6 minus the relative deviation of
// delivery from rights (floored at 0), and w = weightPPM / 10^6. Integer
// arithmetic throughout, so every ledger node agrees.
func (r *Reputation) Update(station string, delivered, rights, rating, weightPPM int64) error {
	if delivered < 0 || rights < 0 || weightPPM < 0 || weightPPM > 1_000_000 || rating > 1_000_000 {
		return fmt.Errorf("%w: reputation update with delivered %d, rights %d, rating %d, weight %d", ErrOrder, delivered, rights, rating, weightPPM)
	}
	if r.Score == nil {
		r.Score = map[string]int64{}
	}
	var score int64 = 1_000_000
	if rights > 0 {
		dev := delivered - rights
		if dev < 0 {
			dev = -dev
		}
		score = max(0, 1_000_000-dev*1_000_000/rights)
	} else if delivered > 0 {
		score = 0
	}
	if rating >= 0 {
		score = (score + rating) / 2
	}
	old, ok := r.Score[station]
	if !ok {
		old = 500_000
	}
	r.Score[station] = (old*(1_000_000-weightPPM) + score*weightPPM) / 1_000_000
	return nil
}
