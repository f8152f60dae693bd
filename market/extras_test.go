package market

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

func TestReputationLevels(t *testing.T) {
	r := &Reputation{Score: map[string]int64{"a": 900_000, "b": 800_000, "c": 500_000, "d": 400_000, "e": 100_000, "f": 50_000}, Levels: 3, Reach: 1}
	lv := r.Level()
	want := map[string]int{"a": 0, "b": 0, "c": 1, "d": 1, "e": 2, "f": 2}
	for k, v := range want {
		if lv[k] != v {
			t.Fatalf("levels %v, want %v", lv, want)
		}
	}
	allowed := r.Allowed()
	if !allowed("a", "c") || allowed("a", "e") || allowed("f", "b") || !allowed("e", "d") {
		t.Fatal("reach of one level not respected")
	}
	// Clearing honours it: the best-reputation buyer cannot take the
	// worst-reputation seller's cheap ask.
	orders := []Order{
		{ID: "1", Trader: "a", Side: Buy, Price: 100, Qty: 10, Seq: 1},
		{ID: "2", Trader: "f", Side: Sell, Price: 10, Qty: 10, Seq: 2},
		{ID: "3", Trader: "c", Side: Sell, Price: 50, Qty: 10, Seq: 3},
	}
	res, err := Clear(orders, PayAsBid, allowed)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Trades) != 1 || res.Trades[0].Seller != "c" {
		t.Fatalf("trades %+v: want a to buy from c only", res.Trades)
	}
}

func TestReputationUpdate(t *testing.T) {
	r := &Reputation{}
	for i := 0; i < 50; i++ {
		if err := r.Update("good", 1000, 1000, 1_000_000, 200_000); err != nil {
			t.Fatal(err)
		}
		if err := r.Update("bad", 200, 1000, 0, 200_000); err != nil {
			t.Fatal(err)
		}
	}
	if r.Score["good"] < 990_000 || r.Score["bad"] > 110_000 {
		t.Fatalf("scores %v: good delivery should approach 1, bad 0.1", r.Score)
	}
	for _, s := range r.Score {
		if s < 0 || s > 1_000_000 {
			t.Fatalf("score %d outside 0..10^6", s)
		}
	}
	if err := r.Update("x", -1, 10, 0, 1); err == nil {
		t.Fatal("negative delivery accepted")
	}
}

// TestRollingPrices: the posted prices settle where total demand meets the
// margin (or at the floor where it is under the margin), checked against a
// bisection on each slot's total demand curve.
func TestRollingPrices(t *testing.T) {
	rng := rand.New(rand.NewPCG(4, 4))
	const T, n = 24, 30
	var bidders []Bidder
	for i := 0; i < n; i++ {
		b := LinearBidder{Base: make([]float64, T), Min: make([]float64, T), Max: make([]float64, T), Slope: 0.5 + rng.Float64()}
		for t := 0; t < T; t++ {
			b.Base[t] = 20 + 30*rng.Float64()
			b.Max[t] = b.Base[t]
			b.Min[t] = 2 * rng.Float64()
		}
		bidders = append(bidders, b)
	}
	margin, floor := make([]float64, T), make([]float64, T)
	for t := range margin {
		margin[t] = 600 + 400*math.Sin(float64(t)/4)
	}
	res, err := RollingPrices(bidders, margin, floor, 0.01, 1e-6, 100000)
	if err != nil {
		t.Fatal(err)
	}
	for slot := 0; slot < T; slot++ {
		demand := func(p float64) float64 {
			s := 0.0
			out := make([]float64, T)
			price := make([]float64, T)
			price[slot] = p
			for _, b := range bidders {
				b.Demand(price, out)
				s += out[slot]
			}
			return s
		}
		want := 0.0
		if demand(0) > margin[slot] {
			lo, hi := 0.0, 1e4
			for k := 0; k < 200; k++ {
				if mid := (lo + hi) / 2; demand(mid) > margin[slot] {
					lo = mid
				} else {
					hi = mid
				}
			}
			want = lo
		}
		if math.Abs(res.Price[slot]-want) > 1e-4*(1+want) {
			t.Fatalf("slot %d: rolling price %.6f, bisection %.6f", slot, res.Price[slot], want)
		}
	}
}

// TestReverseAuctionTruthful: for single-unit sellers no seller gains by
// misreporting its cost, and the buyer gets what it needs from the
// cheapest offers at a price every winner accepts.
func TestReverseAuctionTruthful(t *testing.T) {
	rng := rand.New(rand.NewPCG(8, 8))
	for trial := 0; trial < 300; trial++ {
		n := 1 + rng.IntN(7)
		need := int64(1 + rng.IntN(n+1))
		offers := make([]Offer, n)
		for i := range offers {
			offers[i] = Offer{ID: fmt.Sprintf("ev%d", i), Price: int64(10 + rng.IntN(90)), Qty: 1, Seq: uint64(i)}
		}
		const limit = 80
		utility := func(os []Offer, who int, cost int64) int64 {
			aw, err := ReverseAuction(os, need, limit)
			if err != nil {
				t.Fatal(err)
			}
			for _, a := range aw {
				if a.ID == os[who].ID {
					return a.Qty * (a.Price - cost)
				}
			}
			return 0
		}
		aw, _ := ReverseAuction(offers, need, limit)
		var got int64
		for _, a := range aw {
			got += a.Qty
			for _, o := range offers {
				if o.ID == a.ID && a.Price < o.Price {
					t.Fatalf("winner %s paid %d below its ask %d", a.ID, a.Price, o.Price)
				}
			}
		}
		if got > need {
			t.Fatalf("bought %d, needed %d", got, need)
		}
		for who := range offers {
			cost := offers[who].Price
			honest := utility(offers, who, cost)
			for lie := int64(5); lie <= 100; lie += 5 {
				cheat := append([]Offer(nil), offers...)
				cheat[who].Price = lie
				if u := utility(cheat, who, cost); u > honest {
					t.Fatalf("trial %d: %s with cost %d gains %d by asking %d", trial, offers[who].ID, cost, u-honest, lie)
				}
			}
		}
	}
}
