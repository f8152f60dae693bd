package ledger

import (
	"fmt"
	"sort"

	"github.com/gridveil/gridveil/market"
)

// Roles of ledger accounts.
const (
	RoleStation = "station" // a charging station: demands, trades rights
	RoleGrid    = "grid"    // the grid company: posts margins, collects fees
)

// Params are fixed at genesis.
type Params struct {
	Chain string `json:"chain"`
	// MinuteMillis is the length of one market minute in milliseconds of
	// block time: 60000 in operation; tests and demos shrink it so that a
	// 30-minute trading cycle passes in seconds.
	MinuteMillis int64  `json:"minute_millis"`
	Rule         string `json:"rule"`    // clearing rule: uniform, pay-as-bid or mcafee
	FeePPM       int64  `json:"fee_ppm"` // fee on each trade's value, paid by the buyer to the grid company, parts per million
	// Penalty is charged per kWh of deviation between metered delivery
	// and rights (milli-currency), paid to the grid company.
	Penalty int64 `json:"penalty"`
	// Levels and Reach bound matching by reputation (market.Reputation);
	// Levels 0 switches the restriction off.
	Levels int `json:"levels"`
	Reach  int `json:"reach"`
	// ReputationWeightPPM is how far one delivery moves a reputation.
	ReputationWeightPPM int64 `json:"reputation_weight_ppm"`
}

// Account is a participant: its role, money (milli-currency) and the next
// nonce it must use.
type Account struct {
	Role    string `json:"role"`
	Balance int64  `json:"balance"`
	Nonce   uint64 `json:"nonce"`
	Bus     string `json:"bus,omitempty"` // a station's bus in the grid model
}

// Order is a market order on the ledger with what it holds in reserve.
type Order struct {
	market.Order
	Reserved int64 `json:"reserved"` // buy: money held; sell: rights held (Wh)
}

// Window is the market of one 30-minute delivery window (seed 003's
// timeline, counted back from its start).
type Window struct {
	Demand   map[string]int64 `json:"demand"` // Wh per station
	Margin   int64            `json:"margin"` // Wh the grid allows, posted by the grid company
	HasMarg  bool             `json:"has_margin"`
	RhoPPM   int64            `json:"rho_ppm"`  // satisfaction rate, parts per million
	Assigned bool             `json:"assigned"` // initial rights given out
	Rights   map[string]int64 `json:"rights"`   // Wh per station, excluding rights held by sell orders
	Orders   []Order          `json:"orders"`   // in arrival order
	Cleared  bool             `json:"cleared"`
	Trades   []market.Trade   `json:"trades"`
	Price    int64            `json:"price"` // uniform or McAfee price, if any
	// Posted with the margin: each bus's voltage headroom V_base^2 - vmin^2
	// in nano-pu^2 for this window, and its congestion fee per kWh bought
	// by a station there.
	Slack      map[string]int64 `json:"slack,omitempty"`
	Congestion map[string]int64 `json:"congestion,omitempty"`
	Failed     []Refusal        `json:"failed,omitempty"` // matches the security check refused, with the bus that failed
	// Reduced are the units McAfee's trade reduction removed; the P2P
	// phase must not re-trade them (market.Residual).
	Reduced   []market.Reduction `json:"reduced,omitempty"`
	Contracts []Contract         `json:"contracts,omitempty"` // P2P contracts settled
	Metered   bool               `json:"metered"`             // delivery reported and penalties charged
	// Income is what the grid company received from this window.
	Income Income `json:"income"`
}

// Income is the grid company's receipts from one window, milli-currency.
type Income struct {
	TradeFees  int64 `json:"trade_fees"`      // the fee on each trade's value, auction and P2P
	Congestion int64 `json:"congestion_fees"` // congestion fees on rights bought at congested buses
	Spread     int64 `json:"spread"`          // what buyers paid beyond what sellers received (pay-as-bid, McAfee, rounding)
	Penalties  int64 `json:"penalties"`       // deviations of metered delivery from rights
}

// Total is the window's whole income.
func (in Income) Total() int64 { return in.TradeFees + in.Congestion + in.Spread + in.Penalties }

// State is the whole ledger state. Every field is deterministic: maps are
// serialized with sorted keys, and nothing depends on iteration order.
type State struct {
	Params   Params              `json:"params"`
	Grid     *GridModel          `json:"grid,omitempty"`
	Height   int64               `json:"height"`
	Time     int64               `json:"time_ms"` // consensus time of the last block, Unix ms
	Accounts map[string]*Account `json:"accounts"`
	Windows  map[int64]*Window   `json:"windows"`
	Seq      uint64              `json:"seq"` // orders accepted so far: time priority
	// Reputation of each station, ppm; new stations start at 500 000.
	Reputation map[string]int64 `json:"reputation"`
	// Validators run by stations: consensus weight follows stake and
	// reputation (seed 004's PoS with reputation incentives).
	Validators map[string]*Validator `json:"validators,omitempty"`

	// updates are the validator power changes of the block being built;
	// FinalizeBlock hands them to CometBFT.
	updates []string
	// commit is the incremental application hash (commit.go); nil until
	// the first Hash.
	commit *commitment
}

// Validator is a station's validator: its consensus key and stake. Its
// voting power is max(1, stake x reputation / 10^6).
type Validator struct {
	PubKey []byte `json:"pub_key"` // Ed25519, 32 bytes
	Stake  int64  `json:"stake"`
	Power  int64  `json:"power"`
}

// Genesis is the application state in the genesis file.
type Genesis struct {
	Params     Params               `json:"params"`
	Validators map[string]Validator `json:"validators,omitempty"` // station account -> its validator
	Grid       *GridModel           `json:"grid,omitempty"`       // enables the line security check
	Accounts   map[string]Account   `json:"accounts"`             // hex public key -> role and opening balance
}

// NewState starts the ledger from genesis.
func NewState(g Genesis) (*State, error) {
	p := g.Params
	if p.Chain == "" || p.MinuteMillis <= 0 || p.FeePPM < 0 || p.FeePPM > 1_000_000 {
		return nil, fmt.Errorf("%w: genesis params need a chain id, minute_millis > 0 and 0 <= fee_ppm <= 10^6", ErrValue)
	}
	if _, err := market.ParseRule(p.Rule); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrValue, err)
	}
	s := &State{Params: p, Grid: g.Grid, Accounts: map[string]*Account{}, Windows: map[int64]*Window{}, Reputation: map[string]int64{}}
	if g.Grid != nil {
		if err := g.Grid.validate(); err != nil {
			return nil, err
		}
	}
	grids := 0
	for k, a := range g.Accounts {
		if a.Role != RoleStation && a.Role != RoleGrid {
			return nil, fmt.Errorf("%w: account %s has role %q", ErrValue, k, a.Role)
		}
		if a.Balance < 0 {
			return nil, fmt.Errorf("%w: account %s has a negative balance", ErrValue, k)
		}
		if a.Role == RoleGrid {
			grids++
		}
		if a.Bus != "" && (g.Grid == nil || g.Grid.index(a.Bus) <= 0) {
			return nil, fmt.Errorf("%w: account %s sits at bus %q, which is not a load bus of the grid model", ErrValue, k, a.Bus)
		}
		a := a
		a.Nonce = 0
		s.Accounts[k] = &a
		if a.Role == RoleStation {
			s.Reputation[k] = 500_000
		}
	}
	if grids != 1 {
		return nil, fmt.Errorf("%w: genesis needs exactly one grid company account, has %d", ErrValue, grids)
	}
	for k, v := range g.Validators {
		if a := s.Accounts[k]; a == nil || a.Role != RoleStation || len(v.PubKey) != 32 || v.Stake <= 0 {
			return nil, fmt.Errorf("%w: validator of %s: it must be a station with a 32-byte Ed25519 key and positive stake", ErrValue, k)
		}
		if s.Validators == nil {
			s.Validators = map[string]*Validator{}
		}
		v := v
		v.Power = s.power(k, v.Stake)
		s.Validators[k] = &v
	}
	return s, nil
}

// Phase names, in the order a window goes through them.
const (
	PhaseFuture   = "future"
	PhaseDemand   = "demand"       // -30..-25 min: stations submit demand, the grid company its margin
	PhaseSatisfy  = "satisfaction" // -25..-23: rate and initial rights fixed
	PhaseBids     = "bids"         // -23..-20: auction orders
	PhaseClearing = "clearing"     // -20..-15: the book is cleared and settled
	PhaseP2P      = "p2p"          // -15..-5
	PhaseFees     = "fees"         // -5..0
	PhaseDelivery = "delivery"     // 0..30
	PhaseDone     = "done"
)

// windowMinutes is the length of a delivery window.
const windowMinutes = 30

// PhaseAt returns window w's phase at block time nowMs (Unix milliseconds).
func (s *State) PhaseAt(w int64, nowMs int64) string {
	m := s.Params.MinuteMillis
	start := w * windowMinutes * m
	off := start - nowMs // time left until delivery starts
	switch {
	case off > 30*m:
		return PhaseFuture
	case off > 25*m:
		return PhaseDemand
	case off > 23*m:
		return PhaseSatisfy
	case off > 20*m:
		return PhaseBids
	case off > 15*m:
		return PhaseClearing
	case off > 5*m:
		return PhaseP2P
	case off > 0:
		return PhaseFees
	case off > -windowMinutes*m:
		return PhaseDelivery
	}
	return PhaseDone
}

func (s *State) window(w int64) *Window {
	win := s.Windows[w]
	if win == nil {
		win = &Window{Demand: map[string]int64{}, Rights: map[string]int64{}}
		s.Windows[w] = win
	}
	s.touch(windowKey(w))
	return win
}

func (s *State) grid() string {
	for _, k := range sortedKeys(s.Accounts) {
		if s.Accounts[k].Role == RoleGrid {
			return k
		}
	}
	return ""
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// BeginBlock advances every window whose deadlines block time nowMs has
// passed: initial rights when satisfaction begins, clearing and settlement
// when clearing begins. It runs before the block's transactions.
func (s *State) BeginBlock(height, nowMs int64) {
	s.Height, s.Time = height, nowMs
	s.touch("m")
	ids := make([]int64, 0, len(s.Windows))
	for w := range s.Windows {
		ids = append(ids, w)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	for _, w := range ids {
		win := s.Windows[w]
		ph := s.PhaseAt(w, nowMs)
		past := func(p string) bool { return phaseIndex(ph) >= phaseIndex(p) }
		if !win.Assigned && past(PhaseSatisfy) {
			s.touch(windowKey(w))
			s.assign(win)
		}
		if !win.Cleared && past(PhaseClearing) {
			s.touch(windowKey(w))
			s.clear(win)
		}
	}
}

func phaseIndex(p string) int {
	for i, q := range []string{PhaseFuture, PhaseDemand, PhaseSatisfy, PhaseBids, PhaseClearing, PhaseP2P, PhaseFees, PhaseDelivery, PhaseDone} {
		if p == q {
			return i
		}
	}
	return -1
}

// assign fixes the satisfaction rate rho = min(1, M / sum d) and gives each
// station floor(rho * d_s) Wh of rights (seed 003). Without a posted margin
// no rights are given.
func (s *State) assign(win *Window) {
	win.Assigned = true
	var total int64
	for _, d := range win.Demand {
		total += d
	}
	if !win.HasMarg || total == 0 {
		return
	}
	win.RhoPPM = 1_000_000
	if win.Margin < total {
		win.RhoPPM = win.Margin * 1_000_000 / total
	}
	for _, k := range sortedKeys(win.Demand) {
		win.Rights[k] = win.Demand[k] * win.RhoPPM / 1_000_000
	}
}

// clear runs the double auction over the window's orders and settles every
// trade at once: rights to buyers, money to sellers, fees and the surplus
// to the grid company, and what orders held back returned.
func (s *State) clear(win *Window) {
	// The line security check starts from the loads with the sell orders'
	// rights still at the sellers' buses: taken before the window counts
	// as cleared, after which busLoads leaves the orders out.
	var watts []int64
	if s.Grid != nil {
		watts = s.busLoads(win)
	}
	win.Cleared = true
	rule, _ := market.ParseRule(s.Params.Rule)
	orders := make([]market.Order, len(win.Orders))
	for i, o := range win.Orders {
		orders[i] = o.Order
	}
	res, err := market.Clear(orders, rule, s.allowed())
	if err != nil {
		// Orders were validated on entry; a failure here would be a bug,
		// and the safe outcome is to return every reservation.
		res = &market.Result{}
	}
	win.Price = res.Price
	win.Reduced = res.Reduced
	// The line security check (seed 003): each match in turn, with the
	// rights it would move; a match that fails is unsuccessful and its
	// orders keep their reservations, returned below.
	for _, t := range res.Trades {
		if r := s.secure(watts, win, t.Buyer, t.Seller, t.Qty); r != nil {
			r.Trade = t
			win.Failed = append(win.Failed, *r)
			continue
		}
		if watts != nil {
			if b := s.Grid.index(s.Accounts[t.Buyer].Bus); b > 0 {
				watts[b] += 2 * t.Qty
			}
			if b := s.Grid.index(s.Accounts[t.Seller].Bus); b > 0 {
				watts[b] -= 2 * t.Qty
			}
		}
		win.Trades = append(win.Trades, t)
	}
	grid := s.grid()
	// Amounts are summed per order in Wh x milli-currency/kWh before
	// rounding, once per order: a buyer pays ceil(sum / 1000) plus the fee,
	// never more than its reservation (every fill of one buy order is at or
	// below its bid); a seller receives floor(sum / 1000). The grid company
	// gets the fees and the difference, so money is conserved exactly.
	buyMilli := map[string]int64{}
	sellMilli := map[string]int64{}
	filled := map[string]int64{} // per sell order: rights delivered
	boughtWh := map[string]int64{}
	for _, t := range win.Trades {
		boughtWh[t.Buy] += t.Qty
		buyMilli[t.Buy] += t.Qty * t.BuyerPrice
		sellMilli[t.Sell] += t.Qty * t.SellerPrice
		filled[t.Sell] += t.Qty
		win.Rights[t.Buyer] += t.Qty
	}
	s.touch(accountKey(grid))
	for _, o := range win.Orders {
		s.touch(accountKey(o.Trader))
		switch o.Side {
		case market.Buy:
			cost := (buyMilli[o.ID] + 999) / 1000
			tf, cf := cost*s.Params.FeePPM/1_000_000, s.congestionFee(win, o.Trader, boughtWh[o.ID])
			s.Accounts[o.Trader].Balance += o.Reserved - cost - tf - cf
			s.Accounts[grid].Balance += cost + tf + cf
			win.Income.TradeFees += tf
			win.Income.Congestion += cf
			win.Income.Spread += cost
		case market.Sell:
			gets := sellMilli[o.ID] / 1000
			s.Accounts[o.Trader].Balance += gets
			s.Accounts[grid].Balance -= gets
			win.Income.Spread -= gets
			win.Rights[o.Trader] += o.Reserved - filled[o.ID]
		}
	}
}

// tradeValue is what qty Wh cost at price per kWh, rounded up so that a
// buyer's reservation always covers it.
func tradeValue(qty, price int64) int64 { return (qty*price + 999) / 1000 }

// Deliver applies one authenticated transaction at block time nowMs. On
// error the state is unchanged.
func (s *State) Deliver(b *Body, signer string, nowMs int64) error {
	if err := s.check(b, signer, nowMs); err != nil {
		return err
	}
	acc := s.Accounts[signer]
	acc.Nonce++
	s.touch(accountKey(signer))
	switch b.Type {
	case "transfer":
		acc.Balance -= b.Amount
		s.Accounts[b.To].Balance += b.Amount
		s.touch(accountKey(b.To))
	case "demand":
		s.window(b.Window).Demand[signer] = b.Wh
	case "margin":
		win := s.window(b.Window)
		win.Margin, win.HasMarg = b.Wh, true
		win.Slack, win.Congestion = b.Slack, b.Congestion
	case "p2p":
		s.touch(windowKey(b.Window))
		s.settleContract(s.Windows[b.Window], b.Contract)
	case "delivery":
		s.touch(windowKey(b.Window))
		s.meter(s.Windows[b.Window], b.Delivered)
	case "order":
		win := s.window(b.Window)
		s.Seq++
		s.touch("m")
		s.touch(orderKey(b.Window, len(win.Orders)))
		o := Order{Order: market.Order{ID: fmt.Sprintf("%d", s.Seq), Trader: signer, Price: b.Price, Qty: b.Wh, Seq: s.Seq}}
		if b.Side == "buy" {
			o.Side = market.Buy
			o.Reserved = s.buyReserve(win, signer, b.Wh, b.Price)
			acc.Balance -= o.Reserved
		} else {
			o.Side = market.Sell
			o.Reserved = b.Wh
			win.Rights[signer] -= b.Wh
		}
		win.Orders = append(win.Orders, o)
	}
	return nil
}

func (s *State) buyReserve(win *Window, buyer string, qty, price int64) int64 {
	v := tradeValue(qty, price)
	return v + v*s.Params.FeePPM/1_000_000 + s.congestionFee(win, buyer, qty)
}

// congestionFee is what buying qty Wh at the buyer's bus costs in the
// window's posted congestion fee (per kWh, rounded up).
func (s *State) congestionFee(win *Window, buyer string, qty int64) int64 {
	if win == nil || len(win.Congestion) == 0 {
		return 0
	}
	acc := s.Accounts[buyer]
	if acc == nil {
		return 0
	}
	return (qty*win.Congestion[acc.Bus] + 999) / 1000
}

// check validates a transaction against the state without changing it:
// what CheckTx runs, and Deliver first.
func (s *State) check(b *Body, signer string, nowMs int64) error {
	if b.Chain != s.Params.Chain {
		return fmt.Errorf("%w: transaction for chain %q, this is %q", ErrChain, b.Chain, s.Params.Chain)
	}
	acc := s.Accounts[signer]
	if acc == nil {
		return fmt.Errorf("%w: %s is not registered at genesis", ErrAccount, signer)
	}
	if b.Nonce != acc.Nonce {
		return fmt.Errorf("%w: got %d, the account's next nonce is %d", ErrNonce, b.Nonce, acc.Nonce)
	}
	phaseIs := func(want ...string) error {
		ph := s.PhaseAt(b.Window, nowMs)
		for _, w := range want {
			if ph == w {
				return nil
			}
		}
		return fmt.Errorf("%w: window %d is in phase %s; %s is allowed in %v", ErrPhase, b.Window, ph, b.Type, want)
	}
	switch b.Type {
	case "transfer":
		if b.Amount <= 0 || s.Accounts[b.To] == nil || b.To == signer {
			return fmt.Errorf("%w: a transfer needs a positive amount and another registered recipient", ErrValue)
		}
		if acc.Balance < b.Amount {
			return fmt.Errorf("%w: balance %d, transfer %d", ErrFunds, acc.Balance, b.Amount)
		}
	case "demand":
		if acc.Role != RoleStation {
			return fmt.Errorf("%w: only stations submit demand", ErrRole)
		}
		if b.Wh <= 0 || b.Wh > market.MaxQty {
			return fmt.Errorf("%w: demand %d Wh", ErrValue, b.Wh)
		}
		return phaseIs(PhaseDemand)
	case "margin":
		if acc.Role != RoleGrid {
			return fmt.Errorf("%w: only the grid company posts the load margin", ErrRole)
		}
		if b.Wh < 0 || b.Wh > market.MaxQty {
			return fmt.Errorf("%w: margin %d Wh", ErrValue, b.Wh)
		}
		for bus, v := range b.Slack {
			if s.Grid == nil || s.Grid.index(bus) <= 0 || v < 0 {
				return fmt.Errorf("%w: headroom for bus %q: the bus must be a load bus of the grid model and the headroom >= 0", ErrValue, bus)
			}
		}
		for bus, v := range b.Congestion {
			if s.Grid == nil || s.Grid.index(bus) <= 0 || v < 0 || v > market.MaxPrice {
				return fmt.Errorf("%w: congestion fee for bus %q", ErrValue, bus)
			}
		}
		return phaseIs(PhaseDemand)
	case "order":
		if acc.Role != RoleStation {
			return fmt.Errorf("%w: only stations trade rights", ErrRole)
		}
		if err := phaseIs(PhaseBids); err != nil {
			return err
		}
		if (b.Side != "buy" && b.Side != "sell") || b.Wh <= 0 || b.Wh > market.MaxQty || b.Price < 0 || b.Price > market.MaxPrice {
			return fmt.Errorf("%w: an order needs side buy or sell, 0 < wh <= %d and 0 <= price <= %d", ErrValue, int64(market.MaxQty), int64(market.MaxPrice))
		}
		win := s.Windows[b.Window]
		if b.Side == "sell" {
			if win == nil || win.Rights[signer] < b.Wh {
				have := int64(0)
				if win != nil {
					have = win.Rights[signer]
				}
				return fmt.Errorf("%w: selling %d Wh of rights, holding %d", ErrFunds, b.Wh, have)
			}
		} else if need := s.buyReserve(win, signer, b.Wh, b.Price); acc.Balance < need {
			return fmt.Errorf("%w: the order needs %d in reserve, balance %d", ErrFunds, need, acc.Balance)
		}
	case "p2p":
		c := b.Contract
		if c == nil || c.ID == "" || c.Window != b.Window || c.Buyer != signer || c.Wh <= 0 || c.Wh > market.MaxQty || c.Price < 0 || c.Price > market.MaxPrice {
			return fmt.Errorf("%w: a p2p transaction carries a contract for this window, signed by its buyer, with 0 < wh and a valid price", ErrValue)
		}
		if err := phaseIs(PhaseP2P); err != nil {
			return err
		}
		if !verifyContract(c, s.Params.Chain, b.CounterSig) {
			return fmt.Errorf("%w: the seller has not signed this contract", ErrSignature)
		}
		seller := s.Accounts[c.Seller]
		if seller == nil || seller.Role != RoleStation || c.Seller == c.Buyer || acc.Role != RoleStation {
			return fmt.Errorf("%w: both parties of a contract are distinct stations", ErrRole)
		}
		win := s.Windows[b.Window]
		if win != nil {
			for _, done := range win.Contracts {
				if done.ID == c.ID {
					return fmt.Errorf("%w: contract %s was already settled", ErrNonce, c.ID)
				}
			}
		}
		if win == nil || win.Rights[c.Seller] < c.Wh {
			return fmt.Errorf("%w: the seller does not hold %d Wh of rights", ErrFunds, c.Wh)
		}
		if need := tradeValue(c.Wh, c.Price) + tradeValue(c.Wh, c.Price)*s.Params.FeePPM/1_000_000 + s.congestionFee(win, c.Buyer, c.Wh); acc.Balance < need {
			return fmt.Errorf("%w: the contract costs %d, the buyer holds %d", ErrFunds, need, acc.Balance)
		}
		if s.Grid != nil {
			if r := s.secure(s.busLoads(win), win, c.Buyer, c.Seller, c.Wh); r != nil {
				return fmt.Errorf("%w: the contract fails the line security check at %s", ErrValue, r.Reason())
			}
		}
	case "delivery":
		if acc.Role != RoleGrid {
			return fmt.Errorf("%w: only the grid company reports metered delivery", ErrRole)
		}
		if err := phaseIs(PhaseDelivery, PhaseDone); err != nil {
			return err
		}
		win := s.Windows[b.Window]
		if win == nil || win.Metered {
			return fmt.Errorf("%w: window %d has no market or was already metered", ErrValue, b.Window)
		}
		for k, v := range b.Delivered {
			if a := s.Accounts[k]; a == nil || a.Role != RoleStation || v < 0 || v > market.MaxQty {
				return fmt.Errorf("%w: delivery for %q: a station and 0 <= Wh", ErrValue, k)
			}
		}
	default:
		return fmt.Errorf("%w: unknown transaction type %q", ErrMalformed, b.Type)
	}
	return nil
}

// Money is every balance plus the money held by open buy orders: what the
// ledger's transactions conserve.
func (s *State) Money() int64 {
	var m int64
	for _, a := range s.Accounts {
		m += a.Balance
	}
	for _, w := range s.Windows {
		if w.Cleared {
			continue
		}
		for _, o := range w.Orders {
			if o.Side == market.Buy {
				m += o.Reserved
			}
		}
	}
	return m
}

// allowed is the reputation-level matching restriction, or nil.
func (s *State) allowed() market.Allowed {
	if s.Params.Levels <= 0 {
		return nil
	}
	r := &market.Reputation{Score: s.Reputation, Levels: s.Params.Levels, Reach: s.Params.Reach}
	return r.Allowed()
}

// settleContract moves a P2P contract's rights and money at once.
func (s *State) settleContract(win *Window, c *Contract) {
	cost := tradeValue(c.Wh, c.Price)
	tf, cf := cost*s.Params.FeePPM/1_000_000, s.congestionFee(win, c.Buyer, c.Wh)
	s.Accounts[c.Buyer].Balance -= cost + tf + cf
	s.Accounts[c.Seller].Balance += cost
	s.Accounts[s.grid()].Balance += tf + cf
	s.touch(accountKey(c.Buyer))
	s.touch(accountKey(c.Seller))
	s.touch(accountKey(s.grid()))
	win.Income.TradeFees += tf
	win.Income.Congestion += cf
	win.Rights[c.Seller] -= c.Wh
	win.Rights[c.Buyer] += c.Wh
	win.Contracts = append(win.Contracts, *c)
}

// meter charges each station the penalty for the deviation of its metered
// delivery from its rights (at most its balance) and moves its reputation.
func (s *State) meter(win *Window, delivered map[string]int64) {
	win.Metered = true
	grid := s.grid()
	stations := map[string]bool{}
	for k := range win.Rights {
		stations[k] = true
	}
	for k := range delivered {
		stations[k] = true
	}
	keys := make([]string, 0, len(stations))
	for k := range stations {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	rep := &market.Reputation{Score: s.Reputation}
	s.touch(accountKey(grid))
	for _, k := range keys {
		s.touchStation(k)
		acc := s.Accounts[k]
		if acc == nil || acc.Role != RoleStation {
			continue
		}
		dev := delivered[k] - win.Rights[k]
		if dev < 0 {
			dev = -dev
		}
		pen := min(acc.Balance, (dev*s.Params.Penalty+999)/1000)
		acc.Balance -= pen
		s.Accounts[grid].Balance += pen
		win.Income.Penalties += pen
		w := s.Params.ReputationWeightPPM
		if w == 0 {
			w = 200_000
		}
		_ = rep.Update(k, delivered[k], win.Rights[k], -1, w)
		if v := s.Validators[k]; v != nil {
			if p := s.power(k, v.Stake); p != v.Power {
				v.Power = p
				s.updates = append(s.updates, k)
			}
		}
	}
}

// power is a station's voting power from its stake and reputation.
func (s *State) power(station string, stake int64) int64 {
	return max(1, stake*s.Reputation[station]/1_000_000)
}

// Updates returns and forgets the stations whose validator power changed
// in the current block, in sorted order.
func (s *State) Updates() []*Validator {
	sort.Strings(s.updates)
	var out []*Validator
	for i, k := range s.updates {
		if i > 0 && s.updates[i-1] == k {
			continue
		}
		out = append(out, s.Validators[k])
	}
	s.updates = nil
	return out
}
