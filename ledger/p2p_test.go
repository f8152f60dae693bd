package ledger

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"testing"
	"time"

	abci "github.com/cometbft/cometbft/abci/types"
)

func TestP2PContract(t *testing.T) {
	s, _, st := world(t, "uniform")
	buyer, seller := st[0], st[1]
	const w = 40
	mustDeliver(t, s, seller, Body{Type: "demand", Window: w, Wh: 50_000}, at(w, 28))
	mustDeliver(t, s, buyer, Body{Type: "demand", Window: w, Wh: 10_000}, at(w, 28))
	s.BeginBlock(1, at(w, 24)) // no margin posted: no rights
	s.Windows[w].Rights[seller.key] = 30_000
	money := s.Money()
	c := Contract{ID: "c1", Window: w, Buyer: buyer.key, Seller: seller.key, Wh: 20_000, Price: 150}
	sig, err := SignContract(c, "test", seller.priv)
	if err != nil {
		t.Fatal(err)
	}
	now := at(w, 10) // P2P phase
	// Refused: out of phase, unsigned, signed by someone else.
	if err := deliver(t, s, buyer.tx(t, Body{Type: "p2p", Window: w, Contract: &c, CounterSig: sig}), at(w, 22)); !errors.Is(err, ErrPhase) {
		t.Fatalf("p2p in the bid phase: %v", err)
	}
	other, _ := SignContract(c, "test", st[2].priv)
	for name, bad := range map[string][]byte{"no counter-signature": nil, "wrong signer": other} {
		if err := deliver(t, s, buyer.tx(t, Body{Type: "p2p", Window: w, Contract: &c, CounterSig: bad}), now); !errors.Is(err, ErrSignature) {
			t.Fatalf("%s: %v, want ErrSignature", name, err)
		}
	}
	mustDeliver(t, s, buyer, Body{Type: "p2p", Window: w, Contract: &c, CounterSig: sig}, now)
	win := s.Windows[w]
	if win.Rights[buyer.key] != 20_000 || win.Rights[seller.key] != 10_000 {
		t.Fatalf("rights after the contract: buyer %d, seller %d", win.Rights[buyer.key], win.Rights[seller.key])
	}
	if s.Money() != money {
		t.Fatal("money not conserved by the contract")
	}
	// The same contract again is a replay, even in a fresh envelope.
	if err := deliver(t, s, buyer.tx(t, Body{Type: "p2p", Window: w, Contract: &c, CounterSig: sig}), now); !errors.Is(err, ErrNonce) {
		t.Fatalf("contract replayed: %v", err)
	}
}

func TestMeteringAndReputation(t *testing.T) {
	s, grid, st := world(t, "uniform")
	s.Params.Penalty = 1000 // 1 currency unit per kWh of deviation
	const w = 60
	for _, p := range st[:2] {
		mustDeliver(t, s, p, Body{Type: "demand", Window: w, Wh: 20_000}, at(w, 28))
	}
	mustDeliver(t, s, grid, Body{Type: "margin", Window: w, Wh: 40_000}, at(w, 26))
	s.BeginBlock(1, at(w, 24))
	before := [2]int64{s.Accounts[st[0].key].Balance, s.Accounts[st[1].key].Balance}
	money := s.Money()
	if err := deliver(t, s, grid.tx(t, Body{Type: "delivery", Window: w, Delivered: map[string]int64{st[0].key: 20_000, st[1].key: 5_000}}), at(w, 10)); !errors.Is(err, ErrPhase) {
		t.Fatalf("metering before delivery: %v", err)
	}
	mustDeliver(t, s, grid, Body{Type: "delivery", Window: w, Delivered: map[string]int64{st[0].key: 20_000, st[1].key: 5_000}}, at(w, -31))
	if got := before[1] - s.Accounts[st[1].key].Balance; got != 15_000 {
		t.Fatalf("penalty for 15 kWh short: %d, want 15000", got)
	}
	if s.Accounts[st[0].key].Balance != before[0] {
		t.Fatal("a station that delivered its rights was penalised")
	}
	if s.Money() != money {
		t.Fatal("penalties must move money, not create it")
	}
	if !(s.Reputation[st[0].key] > 500_000 && s.Reputation[st[1].key] < 500_000) {
		t.Fatalf("reputations %d and %d: exact delivery should raise, shortfall lower", s.Reputation[st[0].key], s.Reputation[st[1].key])
	}
	if err := deliver(t, s, grid.tx(t, Body{Type: "delivery", Window: w, Delivered: map[string]int64{st[0].key: 1}}), at(w, -31)); err == nil {
		t.Fatal("a window metered twice")
	}
}

// TestReputationBoundsMatching: with levels on, the lowest-reputation
// station's cheap ask cannot reach the best station's bid.
func TestReputationBoundsMatching(t *testing.T) {
	s, grid, st := world(t, "pay-as-bid")
	s.Params.Levels, s.Params.Reach = 4, 1
	for i, p := range st {
		s.Reputation[p.key] = int64(900_000 - 200_000*i)
	}
	const w = 70
	for _, p := range st {
		mustDeliver(t, s, p, Body{Type: "demand", Window: w, Wh: 10_000}, at(w, 28))
	}
	mustDeliver(t, s, grid, Body{Type: "margin", Window: w, Wh: 40_000}, at(w, 26))
	s.BeginBlock(1, at(w, 24))
	mustDeliver(t, s, st[0], Body{Type: "order", Window: w, Side: "buy", Price: 500, Wh: 5_000}, at(w, 22))
	mustDeliver(t, s, st[3], Body{Type: "order", Window: w, Side: "sell", Price: 10, Wh: 5_000}, at(w, 22))
	mustDeliver(t, s, st[1], Body{Type: "order", Window: w, Side: "sell", Price: 300, Wh: 5_000}, at(w, 22))
	s.BeginBlock(2, at(w, 18))
	for _, tr := range s.Windows[w].Trades {
		if tr.Seller == st[3].key {
			t.Fatal("the lowest level sold to the highest: reputation levels ignored")
		}
	}
	if len(s.Windows[w].Trades) != 1 {
		t.Fatalf("trades %v: want the best station to buy from the next level", s.Windows[w].Trades)
	}
}

// TestValidatorPowerFollowsReputation: a station's validator power is its
// stake times its reputation, and metering hands CometBFT the change.
func TestValidatorPowerFollowsReputation(t *testing.T) {
	grid := newParty(1)
	good, bad := newParty(30), newParty(31)
	g := &Genesis{Params: Params{Chain: "test", MinuteMillis: minute, Rule: "uniform"},
		Accounts:   map[string]Account{grid.key: {Role: RoleGrid}, good.key: {Role: RoleStation, Balance: 1 << 30}, bad.key: {Role: RoleStation, Balance: 1 << 30}},
		Validators: map[string]Validator{good.key: {PubKey: good.priv.Public().(ed25519.PublicKey), Stake: 100}, bad.key: {PubKey: bad.priv.Public().(ed25519.PublicKey), Stake: 100}}}
	d, err := NewDriver(g)
	if err != nil {
		t.Fatal(err)
	}
	s := d.App.State()
	if s.Validators[good.key].Power != 50 {
		t.Fatalf("starting power %d, want stake 100 x reputation 0.5", s.Validators[good.key].Power)
	}
	const w = 90
	sign := func(p *party, b Body) []byte { tx := p.tx(t, b); p.nonce++; return tx }
	if _, err := d.Block(at(w, 28), [][]byte{sign(good, Body{Type: "demand", Window: w, Wh: 10_000}), sign(bad, Body{Type: "demand", Window: w, Wh: 10_000}), sign(grid, Body{Type: "margin", Window: w, Wh: 20_000})}); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Block(at(w, 24), nil); err != nil {
		t.Fatal(err)
	}
	res, err := d.App.FinalizeBlock(context.Background(), &abci.RequestFinalizeBlock{Height: d.Height + 1, Time: time.UnixMilli(at(w, -31)),
		Txs: [][]byte{sign(grid, Body{Type: "delivery", Window: w, Delivered: map[string]int64{good.key: 10_000, bad.key: 0}})}})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.ValidatorUpdates) != 2 {
		t.Fatalf("%d validator updates, want 2", len(res.ValidatorUpdates))
	}
	powers := map[string]int64{}
	for _, u := range res.ValidatorUpdates {
		powers[fmt.Sprintf("%x", u.PubKey.GetEd25519())] = u.Power
	}
	if !(powers[good.key] > 50 && powers[bad.key] < 50 && powers[bad.key] >= 1) {
		t.Fatalf("powers %v: delivering should raise a validator's power, failing to deliver lower it", powers)
	}
}
