package sim

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/gridveil/gridveil/charging"
	"github.com/gridveil/gridveil/ledger"
	"github.com/gridveil/gridveil/market"
	"github.com/gridveil/gridveil/runfile"
	"github.com/gridveil/gridveil/scenario"
)

// V2V trading (docs/ARCHITECTURE.md C7, seed 004), run with --market
// beside the rights auction, on the first feeder's LAGs. In every market
// window at every LAG, the vehicles that agreed to the CA's (distributed)
// discharge request offer their scheduled export at their own price, and
// the aggregator buys for each charging vehicle at that LAG in turn (seed
// 004: "each round matches one charging EV with discharging EVs") by
// market.ReverseAuction over the offers' remaining energy. Traders are
// known to the aggregator only by their session at the LAG (the LAG's
// connection number: anonymous, and never the vehicle's identity).
//
// Every award is a transfer signed by the buyer's account to the seller's
// on a ledger chain of its own (package ledger's application, driven block
// by block as the rights market is); meters then read each seller's
// delivery (dischargeStep.meter) and a seller that delivered short of its
// awards pays the penalty per kWh short to the grid company, again a
// signed transfer. The energy a seller delivered against awards is paid
// by its buyers; the rest of its export goes to the grid and is settled
// in discharge.json.

// v2vTrader is one session at a first-feeder LAG in the V2V step.
type v2vTrader struct {
	ev      int
	id      string
	sched   []int64 // scheduled export per window (sellers)
	metered []int64
	charge  []int64 // scheduled charge per window
	bought  int64   // awarded to it so far (buyers)
}

// later is what the trader still needs from window w on: its scheduled
// charge in windows w and after, less what it was already awarded. The
// station holds what a seller delivers until the buyer's scheduled charge
// takes it (seed 004: the discharging vehicle's energy goes first to the
// charging station, which stores it, then to the matched charging
// vehicle); on the feeder the grid is that store.
func (t *v2vTrader) later(w int) int64 {
	var e int64
	for _, c := range t.charge[w:] {
		e += c
	}
	return max(0, e-t.bought)
}

// v2vChain is the V2V ledger's chain id.
const v2vChain = "gridveil-v2v"

// asks draws each vehicle's V2V ask from the seed: its private cost of
// discharging, uniform in [50, 350) milli-currency per kWh.
func asks(p *charging.Problem, seed uint64, agreed map[int]bool) map[int]int64 {
	rng := rand.New(rand.NewPCG(seed, 0x763276)) // "v2v"
	out := map[int]int64{}
	for i := range p.EVs {
		if ok, asked := agreed[i]; asked {
			a := 50 + int64(300*rng.Float64())
			if ok {
				out[i] = a
			}
		}
	}
	return out
}

// trade runs the day's V2V trading and returns market.json's v2v section
// and each seller's energy delivered against its awards (EV index -> Wh).
func (f *V2G) trade(p *charging.Problem, meta *scenario.Meta, sol *charging.Solution, st *dischargeStep) (*runfile.V2V, map[int]int64, error) {
	if !(f.V2VLimit > 0 && f.V2VLimit <= market.MaxPrice) {
		return nil, nil, fmt.Errorf("--v2v-limit %d: give the most a charging vehicle pays per kWh (milli-currency), in (0, %d]", f.V2VLimit, market.MaxPrice)
	}
	if f.V2VPenalty < 0 || f.V2VPenalty > market.MaxPrice {
		return nil, nil, fmt.Errorf("--v2v-penalty %d: give the penalty per kWh delivered short (milli-currency), in [0, %d]", f.V2VPenalty, market.MaxPrice)
	}
	W := (p.Slots + st.spw - 1) / st.spw
	ask := asks(p, meta.Seed, st.agreed)
	// The first feeder's sessions, per LAG in the order the LAG opened
	// them; each trader's anonymous id is its LAG and session number.
	var lagOrder []string
	byLAG := map[string][]*v2vTrader{}
	all := map[string]*v2vTrader{}
	for i := range p.EVs {
		c := st.sess[i]
		if c == nil || p.EVs[i].Feeder != 0 {
			continue
		}
		lag := st.lagOf[i]
		if _, ok := byLAG[lag]; !ok {
			lagOrder = append(lagOrder, lag)
		}
		tr := &v2vTrader{ev: i, id: fmt.Sprintf("%s#%d", lag, c.id), charge: make([]int64, W)}
		if _, ok := ask[i]; ok {
			ex, err := st.exports(p, i, sol.Schedules[i])
			if err != nil {
				return nil, nil, err
			}
			tr.sched, tr.metered = ex, st.meter(i, ex)
		}
		e := make([]float64, W)
		for t, x := range sol.Schedules[i] {
			e[t/st.spw] += math.Max(x, 0) * p.DT * 1000
		}
		for w := range e {
			tr.charge[w] = int64(math.Round(e[w]))
		}
		byLAG[lag] = append(byLAG[lag], tr)
		all[tr.id] = tr
	}
	// Accounts: every trader and the grid company, with keys derived from
	// the seed as the rights market's are (a simulation: the same seed
	// gives the same chain).
	key := func(label string) ed25519.PrivateKey {
		var s [8]byte
		binary.LittleEndian.PutUint64(s[:], meta.Seed)
		h := sha256.Sum256(append(s[:], "gridveil v2v "+label...))
		return ed25519.NewKeyFromSeed(h[:])
	}
	hexOf := func(k ed25519.PrivateKey) string { return fmt.Sprintf("%x", k.Public()) }
	gridKey := key("grid company")
	g := &ledger.Genesis{Params: ledger.Params{Chain: v2vChain, MinuteMillis: 60_000, Rule: "uniform"},
		Accounts: map[string]ledger.Account{hexOf(gridKey): {Role: ledger.RoleGrid}}}
	keys := map[string]ed25519.PrivateKey{}
	out := &runfile.V2V{Chain: v2vChain, Limit: f.V2VLimit, Penalty: f.V2VPenalty, Shortfall: shortfall, Grid: hexOf(gridKey)}
	for _, lag := range lagOrder {
		for _, tr := range byLAG[lag] {
			k := key(tr.id)
			keys[tr.id] = k
			g.Accounts[hexOf(k)] = ledger.Account{Role: ledger.RoleStation, Balance: ledger.OpeningBalance}
			out.Accounts = append(out.Accounts, runfile.V2VAccount{ID: tr.id, Key: hexOf(k), Opening: ledger.OpeningBalance})
		}
	}
	drv, err := ledger.NewDriver(g)
	if err != nil {
		return nil, nil, fmt.Errorf("V2V ledger: %w", err)
	}
	nonces := map[string]uint64{}
	sign := func(k ed25519.PrivateKey, b ledger.Body) ([]byte, error) {
		b.Chain, b.Nonce = v2vChain, nonces[hexOf(k)]
		nonces[hexOf(k)]++
		return ledger.Sign(b, k)
	}
	// block commits txs at the window's time and records each result.
	block := func(w int, txs [][]byte, rec []runfile.V2VTx) ([]runfile.V2VTx, error) {
		if len(txs) == 0 {
			return rec, nil
		}
		res, err := drv.Block(int64(w+1)*30*60_000+drv.Height, txs)
		if err != nil {
			return nil, err
		}
		for k, r := range res {
			rec[k].Code = r.Code
			if r.Code != 0 {
				return nil, fmt.Errorf("V2V ledger refused the %s transfer of %s in window %d: %s", rec[k].Kind, rec[k].From, w, r.Log)
			}
		}
		return rec, nil
	}
	delivered := map[int]int64{}
	for w := 0; w < W; w++ {
		for _, lag := range lagOrder {
			win := runfile.V2VWindow{Window: w, LAG: lag}
			var offers []market.Offer
			for _, tr := range byLAG[lag] {
				if tr.sched != nil && tr.sched[w] > 0 {
					o := market.Offer{ID: tr.id, Price: ask[tr.ev], Qty: tr.sched[w], Seq: uint64(len(offers) + 1)}
					offers = append(offers, o)
					win.Offers = append(win.Offers, runfile.V2VOffer{ID: o.ID, Price: o.Price, Qty: o.Qty, Seq: o.Seq})
					win.OfferedWh += o.Qty
				}
			}
			var buyers []*v2vTrader
			for _, tr := range byLAG[lag] {
				if tr.sched == nil && tr.later(w) > 0 {
					buyers = append(buyers, tr)
				}
			}
			if len(offers) == 0 || len(buyers) == 0 {
				continue
			}
			left := map[string]int64{}
			for _, o := range offers {
				left[o.ID] = o.Qty
			}
			awarded := map[string]int64{}
			var txs [][]byte
			var rec []runfile.V2VTx
			for _, b := range buyers {
				var live []market.Offer
				for _, o := range offers {
					if left[o.ID] > 0 {
						o.Qty = left[o.ID]
						live = append(live, o)
					}
				}
				if len(live) == 0 {
					break
				}
				need := b.later(w)
				win.NeedWh += need
				aw, err := market.ReverseAuction(live, need, f.V2VLimit)
				if err != nil {
					return nil, nil, fmt.Errorf("V2V window %d at %s: %w", w, lag, err)
				}
				vb := runfile.V2VBuyer{ID: b.id, NeedWh: need, Awards: []runfile.V2VAward{}}
				for _, a := range aw {
					left[a.ID] -= a.Qty
					b.bought += a.Qty
					awarded[a.ID] += a.Qty
					vb.Awards = append(vb.Awards, runfile.V2VAward{Seller: a.ID, Wh: a.Qty, Price: a.Price})
					amount := (a.Qty*a.Price + 999) / 1000
					if amount > 0 {
						tx, err := sign(keys[b.id], ledger.Body{Type: "transfer", To: hexOf(keys[a.ID]), Amount: amount, Window: int64(w), Wh: a.Qty})
						if err != nil {
							return nil, nil, err
						}
						txs = append(txs, tx)
						rec = append(rec, runfile.V2VTx{Kind: "award", From: b.id, To: a.ID, Wh: a.Qty, Amount: amount})
					}
					win.AwardedWh += a.Qty
					win.Paid += amount
				}
				win.Buyers = append(win.Buyers, vb)
			}
			if rec, err = block(w, txs, rec); err != nil {
				return nil, nil, err
			}
			win.Txs = append(win.Txs, rec...)
			// Delivery: each seller's meter against its awards.
			txs, rec = nil, nil
			for _, o := range offers {
				a := awarded[o.ID]
				if a == 0 {
					continue
				}
				tr := all[o.ID]
				dv := runfile.V2VDelivery{Seller: o.ID, AwardedWh: a, MeteredWh: tr.metered[w]}
				dv.DeliveredWh = min(a, dv.MeteredWh)
				dv.ShortWh = a - dv.DeliveredWh
				dv.Penalty = (dv.ShortWh*f.V2VPenalty + 999) / 1000
				delivered[tr.ev] += dv.DeliveredWh
				if dv.Penalty > 0 {
					tx, err := sign(keys[o.ID], ledger.Body{Type: "transfer", To: out.Grid, Amount: dv.Penalty, Window: int64(w), Wh: dv.ShortWh})
					if err != nil {
						return nil, nil, err
					}
					txs = append(txs, tx)
					rec = append(rec, runfile.V2VTx{Kind: "penalty", From: o.ID, To: "grid", Wh: dv.ShortWh, Amount: dv.Penalty})
				}
				win.Delivery = append(win.Delivery, dv)
				win.DeliveredWh += dv.DeliveredWh
				win.ShortWh += dv.ShortWh
				win.Penalties += dv.Penalty
			}
			if rec, err = block(w, txs, rec); err != nil {
				return nil, nil, err
			}
			win.Txs = append(win.Txs, rec...)
			if win.Txs == nil {
				win.Txs = []runfile.V2VTx{}
			}
			to := &out.Totals
			to.OfferedWh += win.OfferedWh
			to.NeedWh += win.NeedWh
			to.AwardedWh += win.AwardedWh
			to.DeliveredWh += win.DeliveredWh
			to.ShortWh += win.ShortWh
			to.Paid += win.Paid
			to.Penalties += win.Penalties
			out.Windows = append(out.Windows, win)
		}
	}
	state := drv.App.State()
	out.Accounts = append(out.Accounts, runfile.V2VAccount{ID: "grid", Key: out.Grid})
	for k := range out.Accounts {
		a := state.Accounts[out.Accounts[k].Key]
		if a == nil {
			return nil, nil, fmt.Errorf("V2V ledger lost account %s", out.Accounts[k].ID)
		}
		out.Accounts[k].Final = a.Balance
	}
	out.Blocks = drv.Height
	out.AppHash = fmt.Sprintf("%x", state.Hash())
	if out.Windows == nil {
		out.Windows = []runfile.V2VWindow{}
	}
	return out, delivered, nil
}
