package ledger

import (
	"context"
	"encoding/json"
	"testing"
	"time"
)

// TestNodeTradingAndRestart runs a trading window through an in-process
// CometBFT validator, stops it, starts it again on the same home and
// checks that the application resumed from its persisted state (not from
// genesis) with the same app hash, and kept committing.
func TestNodeTradingAndRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a CometBFT node")
	}
	home := t.TempDir()
	const min = 300 // ms per market minute: a 30-minute cycle in 9 s
	grid := newParty(1)
	st := []*party{newParty(10), newParty(11)}
	g := &Genesis{Params: Params{Chain: "gridveil-test", MinuteMillis: min, Rule: "uniform", FeePPM: 10_000},
		Accounts: map[string]Account{grid.key: {Role: RoleGrid}, st[0].key: {Role: RoleStation, Balance: 1_000_000}, st[1].key: {Role: RoleStation, Balance: 1_000_000}}}
	n, err := StartNode(NodeConfig{Home: home, Genesis: g, Block: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = n.Stop() }()
	ctx := context.Background()
	send := func(p *party, b Body) {
		t.Helper()
		b.Chain, b.Nonce = "gridveil-test", p.nonce
		tx, err := Sign(b, p.priv)
		if err != nil {
			t.Fatal(err)
		}
		res, err := n.Client.BroadcastTxCommit(ctx, tx)
		if err != nil {
			t.Fatal(err)
		}
		if res.CheckTx.Code != 0 || res.TxResult.Code != 0 {
			t.Fatalf("%s rejected: %s%s", b.Type, res.CheckTx.Log, res.TxResult.Log)
		}
		p.nonce++
	}
	// The next window whose demand phase is at least 2 minutes away.
	cycle := int64(30 * min)
	w := (time.Now().UnixMilli()+30*min+2*min)/cycle + 1
	waitPhase := func(phase string) {
		t.Helper()
		deadline := time.Now().Add(40 * time.Second)
		for time.Now().Before(deadline) {
			// The committed block's time is in the phase (block times only
			// grow) and the phase lasts at least another market minute.
			if s := n.App.State(); s != nil && s.PhaseAt(w, s.Time) == phase && s.PhaseAt(w, time.Now().UnixMilli()+min) == phase {
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
		t.Fatalf("window %d never reached phase %s", w, phase)
	}
	waitPhase(PhaseDemand)
	send(st[0], Body{Type: "demand", Window: w, Wh: 30_000})
	send(st[1], Body{Type: "demand", Window: w, Wh: 10_000})
	send(grid, Body{Type: "margin", Window: w, Wh: 32_000})
	waitPhase(PhaseBids)
	send(st[0], Body{Type: "order", Window: w, Side: "buy", Price: 300, Wh: 5_000})
	send(st[1], Body{Type: "order", Window: w, Side: "sell", Price: 100, Wh: 5_000})
	waitPhase(PhaseP2P)
	q, err := n.Client.ABCIQuery(ctx, "/window", []byte(jsonInt(w)))
	if err != nil || q.Response.Code != 0 {
		t.Fatalf("query: %v %s", err, q.Response.Log)
	}
	var win Window
	if err := json.Unmarshal(q.Response.Value, &win); err != nil {
		t.Fatal(err)
	}
	if !win.Cleared || len(win.Trades) != 1 || win.Trades[0].Qty != 5_000 || win.RhoPPM != 800_000 {
		t.Fatalf("window after clearing: cleared %v, trades %+v, rho %d", win.Cleared, win.Trades, win.RhoPPM)
	}

	// Restart on the same home.
	before := n.App.State()
	hash := before.Hash()
	if err := n.Stop(); err != nil {
		t.Fatal(err)
	}
	reopened, err := NewApp(home + "/app")
	if err != nil {
		t.Fatal(err)
	}
	if s := reopened.State(); s == nil || s.Height != before.Height || string(s.Hash()) != string(hash) {
		t.Fatal("the persisted state is not the state the node stopped with")
	}
	if err := reopened.Close(); err != nil {
		t.Fatal(err)
	}
	n, err = StartNode(NodeConfig{Home: home, Block: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if s := n.App.State(); s != nil && s.Height > before.Height+2 {
			if s.Accounts[st[0].key].Balance != before.Accounts[st[0].key].Balance {
				t.Fatal("a balance changed across the restart")
			}
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatal("the restarted node did not commit new blocks")
}

func jsonInt(v int64) string { b, _ := json.Marshal(v); return string(b) }
