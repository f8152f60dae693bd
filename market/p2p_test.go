package market

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
)

// bruteP2P enumerates every matching of bid units to ask units of
// different traders where the bid is at least the ask, and returns the
// fills per order of the one price-time priority selects: the largest
// gains from trade, then the lexicographically greatest bid fills in
// priority order, then the greatest ask fills. It shares nothing with
// MatchP2P but the ranking of the sides, which it does itself.
func bruteP2P(orders []Order) (fills map[string]int64, welfare int64) {
	var bids, asks []Order
	for _, o := range orders {
		if o.Side == Buy {
			bids = append(bids, o)
		} else {
			asks = append(asks, o)
		}
	}
	rank := func(side []Order, better func(a, b Order) bool) {
		slices.SortStableFunc(side, func(a, b Order) int {
			switch {
			case better(a, b):
				return -1
			case better(b, a):
				return 1
			}
			return 0
		})
	}
	rank(bids, func(a, b Order) bool { return a.Price > b.Price || a.Price == b.Price && a.Seq < b.Seq })
	rank(asks, func(a, b Order) bool { return a.Price < b.Price || a.Price == b.Price && a.Seq < b.Seq })
	type unit struct{ order int }
	var bu, au []unit
	for i, o := range bids {
		for q := int64(0); q < o.Qty; q++ {
			bu = append(bu, unit{i})
		}
	}
	for j, o := range asks {
		for q := int64(0); q < o.Qty; q++ {
			au = append(au, unit{j})
		}
	}
	bf, af := make([]int64, len(bids)), make([]int64, len(asks))
	bestW := int64(-1)
	var bestB, bestA []int64
	used := make([]bool, len(au))
	better := func(w int64) bool {
		if w != bestW {
			return w > bestW
		}
		if c := slices.Compare(bf, bestB); c != 0 {
			return c > 0
		}
		return slices.Compare(af, bestA) > 0
	}
	var rec func(i int, w int64)
	rec = func(i int, w int64) {
		if i == len(bu) {
			if better(w) {
				bestW, bestB, bestA = w, slices.Clone(bf), slices.Clone(af)
			}
			return
		}
		rec(i+1, w)
		b := bids[bu[i].order]
		for j, a := range au {
			s := asks[a.order]
			if used[j] || s.Trader == b.Trader || b.Price < s.Price {
				continue
			}
			used[j] = true
			bf[bu[i].order]++
			af[a.order]++
			rec(i+1, w+b.Price-s.Price)
			bf[bu[i].order]--
			af[a.order]--
			used[j] = false
		}
	}
	rec(0, 0)
	fills = map[string]int64{}
	for i, o := range bids {
		fills[o.ID] = bestB[i]
	}
	for j, o := range asks {
		fills[o.ID] = bestA[j]
	}
	return fills, bestW
}

// TestMatchP2PBruteForce: on small random books with distinct buyers and
// sellers, the P2P match fills every order exactly as brute force over all
// matchings finds for price-time priority (largest gains from trade, then
// the best-ranked bids and asks first), and prices every match at
// floor((bid + ask) / 2), within both limits.
func TestMatchP2PBruteForce(t *testing.T) {
	rng := rand.New(rand.NewPCG(12, 4))
	for trial := 0; trial < 500; trial++ {
		orders := randomBook(rng, 1+rng.IntN(3), 1+rng.IntN(3), 2, 4)
		for i := range orders {
			orders[i].Price = int64(50 + 10*rng.IntN(6)) // ties are common: time priority matters
			if orders[i].Side == Sell {
				orders[i].Trader = "s" + orders[i].Trader
			}
		}
		rng.Shuffle(len(orders), func(i, j int) { orders[i], orders[j] = orders[j], orders[i] })
		trades, err := MatchP2P(orders, nil)
		if err != nil {
			t.Fatal(err)
		}
		byID := map[string]Order{}
		for _, o := range orders {
			byID[o.ID] = o
		}
		got := map[string]int64{}
		var w int64
		for _, tr := range trades {
			b, a := byID[tr.Buy], byID[tr.Sell]
			got[tr.Buy] += tr.Qty
			got[tr.Sell] += tr.Qty
			w += tr.Qty * (b.Price - a.Price)
			if p := (b.Price + a.Price) / 2; tr.BuyerPrice != p || tr.SellerPrice != p {
				t.Fatalf("trial %d: %+v priced %d/%d, want the midpoint %d", trial, tr, tr.BuyerPrice, tr.SellerPrice, p)
			}
			if tr.BuyerPrice > b.Price || tr.SellerPrice < a.Price || tr.Buyer == tr.Seller {
				t.Fatalf("trial %d: %+v breaks a limit or is a self-trade", trial, tr)
			}
		}
		want, bw := bruteP2P(orders)
		if w != bw {
			t.Fatalf("trial %d: gains from trade %d, brute force %d\n%+v", trial, w, bw, orders)
		}
		for _, o := range orders {
			if got[o.ID] != want[o.ID] {
				t.Fatalf("trial %d: order %s (%v %d, seq %d) filled %d, price-time priority fills %d\nbook %+v\ntrades %+v",
					trial, o.ID, o.Side, o.Price, o.Seq, got[o.ID], want[o.ID], orders, trades)
			}
		}
	}
}

// TestMatchP2PSkipsPairs: a trader's own ask and a refused pair are
// skipped, and the match goes on with the next ask.
func TestMatchP2PSkipsPairs(t *testing.T) {
	orders := []Order{
		{ID: "b1", Trader: "A", Side: Buy, Price: 100, Qty: 10, Seq: 1},
		{ID: "a1", Trader: "A", Side: Sell, Price: 40, Qty: 10, Seq: 2},
		{ID: "a2", Trader: "B", Side: Sell, Price: 60, Qty: 5, Seq: 3},
		{ID: "a3", Trader: "C", Side: Sell, Price: 60, Qty: 10, Seq: 4},
	}
	trades, err := MatchP2P(orders, func(buyer, seller string) bool { return seller != "B" })
	if err != nil {
		t.Fatal(err)
	}
	if len(trades) != 1 || trades[0].Sell != "a3" || trades[0].Qty != 10 || trades[0].BuyerPrice != 80 {
		t.Fatalf("trades %+v: want b1 to skip its own ask and the refused one, and buy 10 Wh from a3 at 80", trades)
	}
	if _, err := MatchP2P([]Order{{ID: "x", Trader: "A", Side: Buy, Price: -1, Qty: 1}}, nil); err == nil {
		t.Fatal("a negative price accepted")
	}
}

// TestMcAfeeWithP2P: McAfee's auction followed by the P2P phase on what it
// left is truthful for single-unit traders (exhaustively over misreports on
// random books) when the reduced units stay out of P2P, and P2P then
// trades nothing: the two phases together trade McAfee's volume. Were the
// reduced units re-traded, some trader would gain by misreporting: the
// test finds such a gain, which is why Residual keeps them out.
func TestMcAfeeWithP2P(t *testing.T) {
	rng := rand.New(rand.NewPCG(13, 6))
	// day returns trader who's utility (true value value) from the auction
	// plus P2P, and the P2P volume.
	day := func(orders []Order, who int, value int64, exclude bool) (int64, int64) {
		r, err := Clear(orders, McAfee, nil)
		if err != nil {
			t.Fatal(err)
		}
		reduced := r.Reduced
		if !exclude {
			reduced = nil
		}
		p2p, err := MatchP2P(Residual(orders, r.Trades, reduced), nil)
		if err != nil {
			t.Fatal(err)
		}
		var u, vol int64
		for _, tr := range p2p {
			vol += tr.Qty
		}
		for _, tr := range append(r.Trades, p2p...) {
			if tr.Buy == orders[who].ID {
				u += tr.Qty * (value - tr.BuyerPrice)
			}
			if tr.Sell == orders[who].ID {
				u += tr.Qty * (tr.SellerPrice - value)
			}
		}
		return u, vol
	}
	bestGain, example := int64(0), ""
	for trial := 0; trial < 300; trial++ {
		nb, na := 1+rng.IntN(4), 1+rng.IntN(4)
		orders := randomBook(rng, nb, na, 1, 1)
		for i := range orders {
			orders[i].Trader = fmt.Sprintf("t%d", i)
			orders[i].Qty = 1
		}
		for who := range orders {
			truth := orders[who].Price
			honest, vol := day(orders, who, truth, true)
			if vol != 0 {
				t.Fatalf("trial %d: P2P traded %d Wh after McAfee with the reduction kept out; the residual should not cross\n%+v", trial, vol, orders)
			}
			honestOld, _ := day(orders, who, truth, false)
			for lie := int64(40); lie <= 160; lie++ {
				cheat := append([]Order(nil), orders...)
				cheat[who].Price = lie
				if u, _ := day(cheat, who, truth, true); u > honest {
					t.Fatalf("trial %d: trader %d (%v, value %d) gains %d over auction and P2P by reporting %d\n%+v",
						trial, who, orders[who].Side, truth, u-honest, lie, orders)
				}
				if u, _ := day(cheat, who, truth, false); u-honestOld > bestGain {
					bestGain = u - honestOld
					example = fmt.Sprintf("trial %d: trader %d (%v, value %d) reports %d", trial, who, orders[who].Side, truth, lie)
				}
			}
		}
	}
	if bestGain <= 0 {
		t.Fatal("re-trading the reduced units in P2P gave no trader a gain: the exclusion would be unneeded")
	}
	t.Logf("with the reduced units re-traded in P2P, the largest gain from misreporting is %d milli-currency per Wh (%s)", bestGain, example)
}
