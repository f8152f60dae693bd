package ledger

import (
	"fmt"

	"github.com/gridveil/gridveil/market"
)

// GridModel is the feeder the grid company's security check runs on,
// fixed at genesis and integer, because consensus state must not depend on
// floating-point rounding: resistances in micro-pu, base power in kVA.
type GridModel struct {
	SBaseKVA int64     `json:"s_base_kva"`
	Buses    []GridBus `json:"buses"` // bus 0 is the substation; every bus after its parent
}

// GridBus is one bus and the line from its parent.
type GridBus struct {
	Name   string `json:"name"`
	Parent int    `json:"parent"`  // -1 for the substation
	RMicro int64  `json:"r_micro"` // line resistance, micro-pu
}

// validate checks the model's shape.
func (g *GridModel) validate() error {
	if g.SBaseKVA <= 0 || len(g.Buses) < 2 || g.Buses[0].Parent != -1 {
		return fmt.Errorf("%w: grid model needs s_base_kva > 0 and a substation bus 0 with parent -1", ErrValue)
	}
	for i, b := range g.Buses[1:] {
		if b.Parent < 0 || b.Parent > i || b.RMicro < 0 || b.RMicro > 1_000_000_000 {
			return fmt.Errorf("%w: grid bus %q: parent must come before it and 0 <= r_micro <= 10^9", ErrValue, b.Name)
		}
	}
	return nil
}

func (g *GridModel) index(name string) int {
	for i, b := range g.Buses {
		if b.Name == name {
			return i
		}
	}
	return -1
}

// drops returns, for every bus j, the LinDistFlow drop of V_j^2 in nano-pu^2
// caused by loads watts[k] (W per bus): 2 sum_k R_jk p_k with p in pu, in
// integers. The tree is walked as in package grid: flows up, drops down.
func (g *GridModel) drops(watts []int64) []int64 {
	n := len(g.Buses)
	flow := make([]int64, n)
	copy(flow, watts)
	for i := n - 1; i > 0; i-- {
		flow[g.Buses[i].Parent] += flow[i]
	}
	out := make([]int64, n)
	for i := 1; i < n; i++ {
		b := g.Buses[i]
		// 2 * r[pu] * P[pu] * 1e9 = 2 * (r_micro/1e6) * (P_W/(S*1e3)) * 1e9
		out[i] = out[b.Parent] + 2*b.RMicro*flow[i]/g.SBaseKVA
	}
	return out
}

// busLoads converts a window's rights (Wh over its 30 minutes) into the
// average load they allow at each bus, W: 2 W per Wh.
func (s *State) busLoads(win *Window) []int64 {
	g := s.Grid
	watts := make([]int64, len(g.Buses))
	for _, k := range sortedKeys(win.Rights) {
		if acc := s.Accounts[k]; acc != nil {
			if b := g.index(acc.Bus); b > 0 {
				watts[b] += 2 * win.Rights[k]
			}
		}
	}
	// Rights held by sell orders are still the seller's load until the
	// clearing moves them; after it, what was not sold is back in Rights
	// and must not count twice (the P2P phase's check runs then).
	for _, o := range win.Orders {
		if win.Cleared {
			break
		}
		if o.Side != market.Sell {
			continue
		}
		if acc := s.Accounts[o.Trader]; acc != nil {
			if b := g.index(acc.Bus); b > 0 {
				watts[b] += 2 * o.Reserved
			}
		}
	}
	return watts
}

// Refusal is a match or contract the line security check refused, and
// why: the first bus (in feeder order) that the move would push beyond
// both its posted headroom and where it already was.
type Refusal struct {
	market.Trade
	Bus    string `json:"bus"`
	Before int64  `json:"drop_before_npu2"` // the bus's V^2 drop before the move, nano-pu^2
	After  int64  `json:"drop_after_npu2"`  // and after it
	Limit  int64  `json:"headroom_npu2"`    // the headroom posted for it
}

// Reason says in words why the move was refused.
func (r *Refusal) Reason() string {
	return fmt.Sprintf("bus %s: V^2 drop %d nano-pu^2 after the move exceeds its headroom %d and its %d before", r.Bus, r.After, r.Limit, r.Before)
}

// secure reports whether moving qty Wh of rights from seller to buyer keeps
// every bus within the headroom the grid company posted for the window
// (slack: V_base^2 - vmin^2 in nano-pu^2): no bus may end beyond both its
// headroom and where it already was. Without a grid model or posted
// headroom every trade passes. A refused move comes back as a Refusal
// (with Trade left for the caller to fill), an accepted one as nil.
func (s *State) secure(watts []int64, win *Window, buyer, seller string, qty int64) *Refusal {
	if s.Grid == nil || len(win.Slack) == 0 {
		return nil
	}
	g := s.Grid
	bb, sb := g.index(s.Accounts[buyer].Bus), g.index(s.Accounts[seller].Bus)
	if bb == sb {
		return nil // a move within one bus changes no voltage
	}
	before := g.drops(watts)
	after := append([]int64(nil), watts...)
	if bb > 0 {
		after[bb] += 2 * qty
	}
	if sb > 0 {
		after[sb] -= 2 * qty
	}
	da := g.drops(after)
	for j := 1; j < len(g.Buses); j++ {
		limit, ok := win.Slack[g.Buses[j].Name]
		if !ok {
			continue
		}
		if da[j] > max(limit, before[j]) {
			return &Refusal{Bus: g.Buses[j].Name, Before: before[j], After: da[j], Limit: limit}
		}
	}
	return nil
}
