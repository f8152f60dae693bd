package ledger

import (
	"context"
	"crypto/ed25519"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"sort"
	"time"

	abci "github.com/cometbft/cometbft/abci/types"
)

// Driver runs the ledger application the way CometBFT does, block by
// block, on a simulated clock: what the simulator uses to run a market day
// deterministically in one process. The node shell (StartNode) runs the
// same App under real consensus.
type Driver struct {
	App    *App
	Height int64
}

// NewDriver starts an in-memory application from genesis.
func NewDriver(g *Genesis) (*Driver, error) {
	app, err := NewApp("")
	if err != nil {
		return nil, err
	}
	gen, err := jsonMarshal(g)
	if err != nil {
		return nil, err
	}
	if _, err := app.InitChain(context.Background(), &abci.RequestInitChain{ChainId: g.Params.Chain, AppStateBytes: gen}); err != nil {
		return nil, err
	}
	return &Driver{App: app}, nil
}

// Block finalizes and commits one block with txs at time nowMs and returns
// each transaction's result.
func (d *Driver) Block(nowMs int64, txs [][]byte) ([]*abci.ExecTxResult, error) {
	d.Height++
	res, err := d.App.FinalizeBlock(context.Background(), &abci.RequestFinalizeBlock{Height: d.Height, Time: time.UnixMilli(nowMs), Txs: txs})
	if err != nil {
		return nil, err
	}
	if _, err := d.App.Commit(context.Background(), &abci.RequestCommit{}); err != nil {
		return nil, err
	}
	return res.TxResults, nil
}

// DayStation is one charging station of a market day.
type DayStation struct {
	Name   string
	Bus    string  // bus in the grid model
	Demand []int64 // Wh per delivery window
}

// DayConfig describes a trading day: the windows, the stations, and what
// the grid company posts for each window.
type DayConfig struct {
	Chain    string
	Rule     string
	FeePPM   int64
	Penalty  int64
	Grid     *GridModel
	Stations []DayStation
	Margin   []int64            // Wh per window
	Slack    []map[string]int64 // per window: bus headroom, nano-pu^2
	Fee      []map[string]int64 // per window: bus congestion fee per kWh
	Seed     uint64
}

// DayWindow is one window's outcome.
type DayWindow struct {
	Index      int     `json:"index"`
	Demand     int64   `json:"demand_wh"`
	Margin     int64   `json:"margin_wh"`
	Rho        float64 `json:"satisfaction_rate"`
	Bids, Asks int     `json:"-"`
	Orders     int     `json:"orders"`
	Trades     int     `json:"trades"`
	Failed     int     `json:"failed_security_checks"`
	Volume     int64   `json:"volume_wh"`
	Price      int64   `json:"price"` // uniform or McAfee price, milli-currency per kWh; 0 if none
	Rejected   int     `json:"rejected_transactions"`
}

// DayResult is a market day.
type DayResult struct {
	Rule     string           `json:"rule"`
	Windows  []DayWindow      `json:"windows"`
	Balances map[string]int64 `json:"balances"`  // station name -> milli-currency at the end
	GridFees int64            `json:"grid_fees"` // what the grid company collected
	Money    int64            `json:"money"`     // total money, unchanged from genesis
	AppHash  string           `json:"app_hash"`  // of the final state
	Blocks   int64            `json:"blocks"`
}

// RunDay trades every window of cfg through the ledger application on a
// simulated clock (one block per phase step) and returns the outcome. Each
// station has a private value per window drawn from the seed: above the
// median it buys what its rights lack, below it offers half its rights;
// each trader's keys derive from the seed too, so the day reproduces
// exactly.
func RunDay(cfg DayConfig) (*DayResult, error) {
	W := len(cfg.Margin)
	rng := rand.New(rand.NewPCG(cfg.Seed, 0x6d6b74)) // "mkt"
	key := func(label string) ed25519.PrivateKey {
		var s [32]byte
		binary.LittleEndian.PutUint64(s[:], cfg.Seed)
		copy(s[8:], label)
		return ed25519.NewKeyFromSeed(s[:])
	}
	gridKey := key("grid company")
	hexOf := func(k ed25519.PrivateKey) string { return fmt.Sprintf("%x", k.Public()) }
	g := &Genesis{Params: Params{Chain: cfg.Chain, MinuteMillis: 60_000, Rule: cfg.Rule, FeePPM: cfg.FeePPM, Penalty: cfg.Penalty}, Grid: cfg.Grid,
		Accounts: map[string]Account{hexOf(gridKey): {Role: RoleGrid}}}
	keys := make([]ed25519.PrivateKey, len(cfg.Stations))
	for i, st := range cfg.Stations {
		keys[i] = key("station " + st.Name)
		g.Accounts[hexOf(keys[i])] = Account{Role: RoleStation, Balance: 1_000_000_000, Bus: st.Bus}
	}
	d, err := NewDriver(g)
	if err != nil {
		return nil, err
	}
	nonces := map[string]uint64{}
	sign := func(k ed25519.PrivateKey, b Body) []byte {
		b.Chain, b.Nonce = cfg.Chain, nonces[hexOf(k)]
		nonces[hexOf(k)]++
		tx, _ := Sign(b, k)
		return tx
	}
	const min = 60_000
	res := &DayResult{Rule: cfg.Rule, Balances: map[string]int64{}}
	money := d.App.State().Money()
	// Window w delivers from (w+1) cycles after the epoch; its trading
	// happens in the cycle before.
	base := int64(1_000_000) // cycles after the Unix epoch, so times are positive
	for w := 0; w < W; w++ {
		win := base + int64(w)
		start := win * 30 * min
		rejected := 0
		block := func(minutesBefore int64, txs [][]byte) error {
			rs, err := d.Block(start-minutesBefore*min, txs)
			for _, r := range rs {
				if r.Code != 0 {
					rejected++
				}
			}
			return err
		}
		var txs [][]byte
		var total int64
		for i, st := range cfg.Stations {
			if st.Demand[w] > 0 {
				txs = append(txs, sign(keys[i], Body{Type: "demand", Window: win, Wh: st.Demand[w]}))
				total += st.Demand[w]
			}
		}
		margin := Body{Type: "margin", Window: win, Wh: cfg.Margin[w]}
		if cfg.Slack != nil {
			margin.Slack = cfg.Slack[w]
		}
		if cfg.Fee != nil {
			margin.Congestion = cfg.Fee[w]
		}
		txs = append(txs, sign(gridKey, margin))
		if err := block(28, txs); err != nil {
			return nil, err
		}
		if err := block(24, nil); err != nil { // rights assigned
			return nil, err
		}
		s := d.App.State()
		wstate := s.Windows[win]
		values := make([]int64, len(cfg.Stations))
		for i := range values {
			values[i] = int64(50 + rng.IntN(450))
		}
		sorted := append([]int64(nil), values...)
		sort.Slice(sorted, func(a, b int) bool { return sorted[a] < sorted[b] })
		median := sorted[len(sorted)/2]
		txs = nil
		orders := 0
		for i, st := range cfg.Stations {
			k := hexOf(keys[i])
			var rights int64
			if wstate != nil {
				rights = wstate.Rights[k]
			}
			if values[i] >= median {
				if short := st.Demand[w] - rights; short > 0 {
					txs = append(txs, sign(keys[i], Body{Type: "order", Window: win, Side: "buy", Price: values[i], Wh: short}))
					orders++
				}
			} else if rights > 1 {
				txs = append(txs, sign(keys[i], Body{Type: "order", Window: win, Side: "sell", Price: values[i], Wh: rights / 2}))
				orders++
			}
		}
		if err := block(22, txs); err != nil {
			return nil, err
		}
		if err := block(18, nil); err != nil { // cleared and settled
			return nil, err
		}
		s = d.App.State()
		wstate = s.Windows[win]
		dw := DayWindow{Index: w, Demand: total, Margin: cfg.Margin[w], Orders: orders, Rejected: rejected}
		if wstate != nil {
			dw.Rho = float64(wstate.RhoPPM) / 1e6
			dw.Trades, dw.Failed, dw.Price = len(wstate.Trades), len(wstate.Failed), wstate.Price
			for _, t := range wstate.Trades {
				dw.Volume += t.Qty
			}
		}
		res.Windows = append(res.Windows, dw)
	}
	s := d.App.State()
	for i, st := range cfg.Stations {
		res.Balances[st.Name] = s.Accounts[hexOf(keys[i])].Balance
	}
	res.GridFees = s.Accounts[hexOf(gridKey)].Balance
	res.Money = s.Money()
	if res.Money != money {
		return nil, fmt.Errorf("ledger: money not conserved over the day: %d at genesis, %d at the end", money, res.Money)
	}
	res.AppHash = fmt.Sprintf("%x", s.Hash())
	res.Blocks = d.Height
	return res, nil
}
