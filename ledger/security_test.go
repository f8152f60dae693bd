package ledger

import (
	"fmt"
	"math"
	"testing"

	"github.com/gridveil/gridveil/grid"
)

// ieee13Model converts the grid package's IEEE 13 feeder to integers.
func ieee13Model() (*GridModel, grid.Feeder) {
	f, _ := grid.IEEE13()
	g := &GridModel{SBaseKVA: int64(f.SBase)}
	for _, b := range f.Buses {
		g.Buses = append(g.Buses, GridBus{Name: b.Name, Parent: b.Parent, RMicro: int64(math.Round(b.R * 1e6))})
	}
	return g, f
}

// TestDropsMatchGrid: the ledger's integer drops agree with the grid
// package's LinDistFlow to within integer rounding.
func TestDropsMatchGrid(t *testing.T) {
	g, f := ieee13Model()
	n := len(f.Buses)
	watts := make([]int64, n)
	kw := make([]float64, n)
	for i := 1; i < n; i++ {
		watts[i] = int64(50_000 * i)
		kw[i] = float64(watts[i]) / 1000
	}
	got := g.drops(watts)
	want := make([]float64, n)
	f.MulR(kw, want)
	for j := 1; j < n; j++ {
		w := 2 * want[j] / f.SBase * 1e9 // nano-pu^2
		if math.Abs(float64(got[j])-w) > 1e-3*w+float64(n) {
			t.Fatalf("bus %s: drop %d nano-pu^2, grid package %.0f", f.Buses[j].Name, got[j], w)
		}
	}
}

// TestSecurityCheck: a match that would push the far end of the feeder
// past its posted headroom is refused and its reservations returned; a
// smaller one passes and pays the congestion fee of the buyer's bus.
func TestSecurityCheck(t *testing.T) {
	model, _ := ieee13Model()
	grid := newParty(1)
	far, near := newParty(20), newParty(21)
	g := Genesis{Params: Params{Chain: "test", MinuteMillis: minute, Rule: "pay-as-bid"}, Grid: model,
		Accounts: map[string]Account{grid.key: {Role: RoleGrid}, far.key: {Role: RoleStation, Balance: 10_000_000, Bus: "652"}, near.key: {Role: RoleStation, Balance: 10_000_000, Bus: "632"}}}
	for _, qty := range []int64{400_000, 20_000} {
		s, err := NewState(g)
		if err != nil {
			t.Fatal(err)
		}
		far.nonce, near.nonce, grid.nonce = 0, 0, 0
		const w = 7
		money := s.Money()
		mustDeliver(t, s, far, Body{Type: "demand", Window: w, Wh: 10_000}, at(w, 28))
		mustDeliver(t, s, near, Body{Type: "demand", Window: w, Wh: 500_000}, at(w, 28))
		// The initial rights (1 MW at 632, 20 kW at 652) already drop bus
		// 652 by `base`; the grid company leaves about 100 kW more at 652
		// (2 R P / S with R(652) = 23 622 micro-pu: 100 kW -> 4.7e6).
		watts := make([]int64, len(model.Buses))
		watts[model.index("632")], watts[model.index("652")] = 1_000_000, 20_000
		base := model.drops(watts)[model.index("652")]
		mustDeliver(t, s, grid, Body{Type: "margin", Window: w, Wh: 510_000, Slack: map[string]int64{"652": base + 5_000_000}, Congestion: map[string]int64{"652": 50}}, at(w, 26))
		s.BeginBlock(1, at(w, 24))
		mustDeliver(t, s, far, Body{Type: "order", Window: w, Side: "buy", Price: 200, Wh: qty}, at(w, 22))
		mustDeliver(t, s, near, Body{Type: "order", Window: w, Side: "sell", Price: 100, Wh: qty}, at(w, 22))
		s.BeginBlock(2, at(w, 18))
		win := s.Windows[w]
		if s.Money() != money {
			t.Fatalf("qty %d: money not conserved", qty)
		}
		big := qty == 400_000
		if big && (len(win.Trades) != 0 || len(win.Failed) != 1 || win.Rights[far.key] != 10_000 || s.Accounts[far.key].Balance != 10_000_000) {
			t.Fatalf("an 800 kW move to bus 652 passed the security check: trades %v, failed %v, rights %d, balance %d", win.Trades, win.Failed, win.Rights[far.key], s.Accounts[far.key].Balance)
		}
		if !big {
			if len(win.Trades) != 1 || win.Rights[far.key] != 10_000+qty {
				t.Fatalf("a 40 kW move was refused: trades %v, failed %v", win.Trades, win.Failed)
			}
			// cost 20 000 Wh x 200 = 4000, congestion 20 kWh x 50 = 1000.
			if paid := 10_000_000 - s.Accounts[far.key].Balance; paid != 4000+1000 {
				t.Fatalf("buyer paid %d, want 4000 plus the 1000 congestion fee", paid)
			}
		}
	}
	// Headroom for a bus the model does not have is refused.
	s, _ := NewState(g)
	grid.nonce = 0
	if err := deliver(t, s, grid.tx(t, Body{Type: "margin", Window: 7, Wh: 1, Slack: map[string]int64{"999": 1}}), at(7, 28)); err == nil {
		t.Fatal("headroom for an unknown bus accepted")
	}
}

// TestBusLoadsAfterClearing: once the book is cleared, what sell orders
// held is back in the sellers' rights, so the loads the P2P phase's
// security check starts from are the rights alone (2 W per Wh), not the
// unsold offers counted twice.
func TestBusLoadsAfterClearing(t *testing.T) {
	model, _ := ieee13Model()
	grid, far, near := newParty(1), newParty(20), newParty(21)
	g := Genesis{Params: Params{Chain: "test", MinuteMillis: minute, Rule: "uniform"}, Grid: model,
		Accounts: map[string]Account{grid.key: {Role: RoleGrid}, far.key: {Role: RoleStation, Balance: 10_000_000, Bus: "652"}, near.key: {Role: RoleStation, Balance: 10_000_000, Bus: "632"}}}
	s, err := NewState(g)
	if err != nil {
		t.Fatal(err)
	}
	const w = 7
	mustDeliver(t, s, far, Body{Type: "demand", Window: w, Wh: 10_000}, at(w, 28))
	mustDeliver(t, s, near, Body{Type: "demand", Window: w, Wh: 50_000}, at(w, 28))
	mustDeliver(t, s, grid, Body{Type: "margin", Window: w, Wh: 60_000}, at(w, 26))
	s.BeginBlock(1, at(w, 24))
	// An ask nobody takes: after clearing, all 30 kWh are near's rights again.
	mustDeliver(t, s, near, Body{Type: "order", Window: w, Side: "sell", Price: 100, Wh: 30_000}, at(w, 22))
	want := func() []int64 {
		out := make([]int64, len(model.Buses))
		win := s.Windows[w]
		out[model.index("652")] = 2 * win.Rights[far.key]
		out[model.index("632")] = 2 * win.Rights[near.key]
		return out
	}
	win := s.Windows[w]
	before := s.busLoads(win)
	if before[model.index("632")] != 2*50_000 {
		t.Fatalf("during bidding, bus 632 carries %d W, want its 50 kWh of rights (20 kWh held, 30 kWh offered) as 100 kW", before[model.index("632")])
	}
	s.BeginBlock(2, at(w, 18))
	if got := s.busLoads(win); fmt.Sprint(got) != fmt.Sprint(want()) {
		t.Fatalf("after clearing the loads are %v, the rights give %v", got, want())
	}
}
