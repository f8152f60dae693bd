package market

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"
)

func randomBook(rng *rand.Rand, nb, na, maxQty int, traders int) []Order {
	var os []Order
	seq := uint64(0)
	for i := 0; i < nb+na; i++ {
		side := Buy
		if i >= nb {
			side = Sell
		}
		seq++
		os = append(os, Order{
			ID: fmt.Sprintf("o%d", i), Trader: fmt.Sprintf("t%d", rng.IntN(traders)), Side: side,
			Price: int64(50 + rng.IntN(100)), Qty: int64(1 + rng.IntN(maxQty)), Seq: seq,
		})
	}
	return os
}

// bruteWelfare is the largest gains from trade (sum of matched bid prices
// minus matched ask prices, per unit) over every assignment of bid units to
// ask units from different traders: the independent optimum.
func bruteWelfare(orders []Order) int64 {
	type unit struct {
		price  int64
		trader string
	}
	var bu, au []unit
	for _, o := range orders {
		for q := int64(0); q < o.Qty; q++ {
			if o.Side == Buy {
				bu = append(bu, unit{o.Price, o.Trader})
			} else {
				au = append(au, unit{o.Price, o.Trader})
			}
		}
	}
	used := make([]bool, len(au))
	var best int64
	var rec func(i int, acc int64)
	rec = func(i int, acc int64) {
		if acc > best {
			best = acc
		}
		if i == len(bu) {
			return
		}
		rec(i+1, acc) // bid unit i does not trade
		for j, a := range au {
			if !used[j] && a.trader != bu[i].trader && bu[i].price >= a.price {
				used[j] = true
				rec(i+1, acc+bu[i].price-a.price)
				used[j] = false
			}
		}
	}
	rec(0, 0)
	return best
}

func welfare(r *Result, orders []Order) int64 {
	price := map[string]int64{}
	for _, o := range orders {
		price[o.ID] = o.Price
	}
	var w int64
	for _, t := range r.Trades {
		w += t.Qty * (price[t.Buy] - price[t.Sell])
	}
	return w
}

// TestClearMatchesBruteForce: with distinct traders on each side, price-time
// matching reaches the largest gains from trade, as brute force over every
// assignment finds.
func TestClearMatchesBruteForce(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for trial := 0; trial < 400; trial++ {
		orders := randomBook(rng, 1+rng.IntN(3), 1+rng.IntN(3), 2, 20)
		for i := range orders { // buyers and sellers disjoint
			if orders[i].Side == Sell {
				orders[i].Trader = "s" + orders[i].Trader
			}
		}
		for _, rule := range []Rule{Uniform, PayAsBid} {
			r, err := Clear(orders, rule, nil)
			if err != nil {
				t.Fatal(err)
			}
			if got, want := welfare(r, orders), bruteWelfare(orders); got != want {
				t.Fatalf("trial %d %v: gains from trade %d, brute force %d\n%+v", trial, rule, got, want, orders)
			}
		}
	}
}

// TestClearingRules checks each rule's defining properties on random books.
func TestClearingRules(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for trial := 0; trial < 2000; trial++ {
		orders := randomBook(rng, 1+rng.IntN(8), 1+rng.IntN(8), 50, 6)
		limit := map[string]int64{}
		for _, o := range orders {
			limit[o.ID] = o.Price
		}
		for _, rule := range []Rule{Uniform, PayAsBid, McAfee} {
			r, err := Clear(orders, rule, nil)
			if err != nil {
				t.Fatal(err)
			}
			filled := map[string]int64{}
			for _, tr := range r.Trades {
				if tr.Buyer == tr.Seller {
					t.Fatalf("%v: self-trade %+v", rule, tr)
				}
				if tr.BuyerPrice > limit[tr.Buy] || tr.SellerPrice < limit[tr.Sell] {
					t.Fatalf("%v: trade %+v breaks a limit (bid %d, ask %d)", rule, tr, limit[tr.Buy], limit[tr.Sell])
				}
				if tr.BuyerPrice < tr.SellerPrice {
					t.Fatalf("%v: buyer pays less than seller receives: %+v", rule, tr)
				}
				filled[tr.Buy] += tr.Qty
				filled[tr.Sell] += tr.Qty
				switch rule {
				case Uniform:
					if tr.BuyerPrice != r.Price || tr.SellerPrice != r.Price {
						t.Fatalf("uniform: trade at %d/%d, clearing price %d", tr.BuyerPrice, tr.SellerPrice, r.Price)
					}
				case PayAsBid:
					if tr.BuyerPrice != limit[tr.Buy] || tr.SellerPrice != limit[tr.Sell] {
						t.Fatalf("pay-as-bid: trade %+v not at the orders' own prices", tr)
					}
				}
			}
			for _, o := range orders {
				if filled[o.ID] > o.Qty {
					t.Fatalf("%v: order %s filled %d beyond its %d", rule, o.ID, filled[o.ID], o.Qty)
				}
			}
			if r.Surplus < 0 {
				t.Fatalf("%v: negative surplus %d: the platform would pay", rule, r.Surplus)
			}
			if rule == Uniform && len(r.Trades) > 0 {
				// Nothing left trades at the clearing price: no remaining
				// bid at or above it meets a remaining ask at or below it
				// from another trader.
				for _, b := range orders {
					for _, a := range orders {
						if b.Side == Buy && a.Side == Sell && b.Trader != a.Trader && filled[b.ID] < b.Qty && filled[a.ID] < a.Qty && b.Price >= r.Price && a.Price <= r.Price {
							t.Fatalf("uniform: bid %s (%d) and ask %s (%d) would still trade at %d", b.ID, b.Price, a.ID, a.Price, r.Price)
						}
					}
				}
			}
		}
	}
}

// TestMcAfeeTruthful: on unit-demand books with one order per trader, no
// trader gains by misreporting its value, whatever the others do; and the
// rule never runs a deficit.
func TestMcAfeeTruthful(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	utility := func(orders []Order, who int, value int64) int64 {
		r, err := Clear(orders, McAfee, nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, tr := range r.Trades {
			if tr.Buy == orders[who].ID {
				return value - tr.BuyerPrice
			}
			if tr.Sell == orders[who].ID {
				return tr.SellerPrice - value
			}
		}
		return 0
	}
	for trial := 0; trial < 300; trial++ {
		nb, na := 1+rng.IntN(5), 1+rng.IntN(5)
		orders := randomBook(rng, nb, na, 1, 1)
		for i := range orders {
			orders[i].Trader = fmt.Sprintf("t%d", i)
			orders[i].Qty = 1
		}
		for who := range orders {
			truth := orders[who].Price
			honest := utility(orders, who, truth)
			for lie := int64(40); lie <= 160; lie += 3 {
				cheat := append([]Order(nil), orders...)
				cheat[who].Price = lie
				if u := utility(cheat, who, truth); u > honest {
					t.Fatalf("trial %d: trader %d (%v, value %d) gains %d by bidding %d instead of %d",
						trial, who, orders[who].Side, truth, u-honest, lie, honest)
				}
			}
		}
	}
}

func TestSelfTradeSkipped(t *testing.T) {
	orders := []Order{
		{ID: "b1", Trader: "A", Side: Buy, Price: 100, Qty: 10, Seq: 1},
		{ID: "a1", Trader: "A", Side: Sell, Price: 50, Qty: 10, Seq: 2}, // best ask is A's own
		{ID: "a2", Trader: "B", Side: Sell, Price: 60, Qty: 10, Seq: 3},
		{ID: "b2", Trader: "C", Side: Buy, Price: 90, Qty: 10, Seq: 4},
	}
	r, err := Clear(orders, PayAsBid, nil)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int64{}
	for _, tr := range r.Trades {
		got[tr.Buy+">"+tr.Sell] = tr.Qty
	}
	if got["b1>a2"] != 10 || got["b2>a1"] != 10 || len(got) != 2 {
		t.Fatalf("want A's bid to skip its own ask and take B's, and C to take A's ask; got %v", got)
	}
	// Reputation levels: C may not trade with A.
	r, err = Clear(orders, PayAsBid, func(buyer, seller string) bool { return !(buyer == "C" && seller == "A") })
	if err != nil {
		t.Fatal(err)
	}
	for _, tr := range r.Trades {
		if tr.Buyer == "C" && tr.Seller == "A" {
			t.Fatalf("eligibility ignored: %+v", tr)
		}
	}
}

func TestClearDeterministic(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	orders := randomBook(rng, 50, 50, 100, 10)
	a, _ := Clear(orders, Uniform, nil)
	shuffled := append([]Order(nil), orders...)
	rng.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
	b, _ := Clear(shuffled, Uniform, nil)
	if fmt.Sprint(a) != fmt.Sprint(b) {
		t.Fatal("the result depends on the order orders arrive in, beyond their Seq")
	}
}

func TestBadOrders(t *testing.T) {
	good := Order{ID: "x", Trader: "A", Side: Buy, Price: 10, Qty: 5}
	cases := map[string]func(o *Order){
		"no id":      func(o *Order) { o.ID = "" },
		"no trader":  func(o *Order) { o.Trader = "" },
		"bad side":   func(o *Order) { o.Side = 7 },
		"neg price":  func(o *Order) { o.Price = -1 },
		"zero qty":   func(o *Order) { o.Qty = 0 },
		"huge qty":   func(o *Order) { o.Qty = MaxQty + 1 },
		"huge price": func(o *Order) { o.Price = MaxPrice + 1 },
	}
	for name, edit := range cases {
		o := good
		edit(&o)
		if _, err := Clear([]Order{o}, Uniform, nil); !errors.Is(err, ErrOrder) {
			t.Errorf("%s: %v, want ErrOrder", name, err)
		}
	}
	if _, err := Clear([]Order{good, good}, Uniform, nil); !errors.Is(err, ErrOrder) {
		t.Error("duplicate id accepted")
	}
}

// BenchmarkClear clears a book of 10^6 orders (half bids, half asks).
func BenchmarkClear(b *testing.B) {
	rng := rand.New(rand.NewPCG(9, 9))
	for _, n := range []int{1000, 1000000} {
		orders := randomBook(rng, n/2, n/2, 10000, n/10)
		for _, rule := range []Rule{Uniform, McAfee} {
			b.Run(fmt.Sprintf("orders=%d/%v", n, rule), func(b *testing.B) {
				for b.Loop() {
					if _, err := Clear(orders, rule, nil); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "orders/s")
			})
		}
	}
}
