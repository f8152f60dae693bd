package market

import (
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"
)

// variedBook draws a book that exercises what the compact book does
// differently from the previous clearing: prices in a narrow band (many
// equal prices), a wide band or across the whole range; Seqs small,
// spread over all 64 bits (every radix pass), or with equal values; few
// or many traders (self-trade pairs); quantities up to MaxQty; orders in
// any arrival order.
func variedBook(rng *rand.Rand) []Order {
	n := 1 + rng.IntN(300)
	if rng.IntN(20) == 0 {
		n = 1000 + rng.IntN(3000)
	}
	traders := 1 + rng.IntN(max(n/3, 1))
	var lo, span int64
	switch rng.IntN(3) {
	case 0:
		lo, span = 100, 1+rng.Int64N(5)
	case 1:
		lo, span = rng.Int64N(1000), 1+rng.Int64N(100_000)
	default:
		lo, span = 0, MaxPrice+1
	}
	seqMode := rng.IntN(3)
	orders := make([]Order, n)
	for i := range orders {
		o := &orders[i]
		o.ID = fmt.Sprintf("o%d", rng.Uint32())
		o.Trader = fmt.Sprintf("t%d", rng.IntN(traders))
		o.Side = Side(rng.IntN(2))
		o.Price = min(lo+rng.Int64N(span), MaxPrice)
		o.Qty = 1 + rng.Int64N(50)
		if rng.IntN(50) == 0 {
			o.Qty = 1 + rng.Int64N(MaxQty)
		}
		switch seqMode {
		case 0:
			o.Seq = uint64(i + 1)
		case 1:
			o.Seq = rng.Uint64()
		}
	}
	// ids must be unique for the book to clear; make them so unless a
	// caller wants a repeat.
	seen := map[string]bool{}
	for i := range orders {
		for seen[orders[i].ID] {
			orders[i].ID += "x"
		}
		seen[orders[i].ID] = true
	}
	if seqMode == 0 {
		rng.Shuffle(n, func(i, j int) { orders[i], orders[j] = orders[j], orders[i] })
	}
	return orders
}

// levels is a random matching restriction of the kind Reputation builds.
func levels(rng *rand.Rand, orders []Order) Allowed {
	lv := map[string]int{}
	for _, o := range orders {
		lv[o.Trader] = rng.IntN(4)
	}
	return func(b, s string) bool { d := lv[b] - lv[s]; return d <= 1 && d >= -1 }
}

// TestClearMatchesPrevious: on books whose orders have distinct Seqs (as
// the ledger's do), the compact book's Clear and MatchP2P give exactly
// the previous implementation's result (ref_test.go), trade for trade,
// under every rule, with and without a matching restriction. With
// repeated Seqs the previous order among equal (price, Seq) orders was
// whatever its unstable sort left; there the new result (ties in ID
// order) must not depend on the arrival order.
func TestClearMatchesPrevious(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	for trial := 0; trial < 3000; trial++ {
		orders := variedBook(rng)
		distinct := true
		seqs := map[uint64]bool{}
		for _, o := range orders {
			if seqs[o.Seq] {
				distinct = false
			}
			seqs[o.Seq] = true
		}
		var allowed Allowed
		if rng.IntN(2) == 0 {
			allowed = levels(rng, orders)
		}
		for _, rule := range []Rule{Uniform, PayAsBid, McAfee} {
			got, err := Clear(orders, rule, allowed)
			if err != nil {
				t.Fatal(err)
			}
			if distinct {
				want, err := refClear(orders, rule, allowed)
				if err != nil {
					t.Fatal(err)
				}
				if !reflect.DeepEqual(got, want) {
					t.Fatalf("trial %d %v: %d orders: got %d trades, volume %d, price %d; previous %d trades, volume %d, price %d",
						trial, rule, len(orders), len(got.Trades), got.Volume, got.Price, len(want.Trades), want.Volume, want.Price)
				}
				continue
			}
			shuffled := slices.Clone(orders)
			rng.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
			again, err := Clear(shuffled, rule, allowed)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, again) {
				t.Fatalf("trial %d %v: repeated Seqs: the result depends on arrival order", trial, rule)
			}
		}
		if distinct {
			got, err := MatchP2P(orders, allowed)
			if err != nil {
				t.Fatal(err)
			}
			want, _ := refMatchP2P(orders, allowed)
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("trial %d: MatchP2P differs from the previous implementation", trial)
			}
		}
	}
}

// TestClearErrorsMatchPrevious: a book with invalid orders or repeated ids
// at random places is refused with the previous implementation's error,
// which names the first offending order in input order.
func TestClearErrorsMatchPrevious(t *testing.T) {
	rng := rand.New(rand.NewPCG(13, 14))
	for trial := 0; trial < 2000; trial++ {
		orders := slices.Clone(variedBook(rng))
		for range 1 + rng.IntN(3) {
			i := rng.IntN(len(orders))
			switch rng.IntN(4) {
			case 0: // repeat an id
				orders[i].ID = orders[rng.IntN(len(orders))].ID
			case 1:
				orders[i].Qty = 0
			case 2:
				orders[i].Price = -1
			default:
				orders[i].Trader = ""
			}
		}
		_, got := Clear(orders, Uniform, nil)
		_, want := refClear(orders, Uniform, nil)
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("trial %d: error %q, previous %q", trial, got, want)
		}
		_, got = MatchP2P(orders, nil)
		_, want = refMatchP2P(orders, nil)
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("trial %d: p2p error %q, previous %q", trial, got, want)
		}
	}
}
