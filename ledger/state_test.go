package ledger

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/gridveil/gridveil/market"
)

type party struct {
	priv  ed25519.PrivateKey
	key   string
	nonce uint64
}

func edKey(seed [32]byte) ed25519.PrivateKey { return ed25519.NewKeyFromSeed(seed[:]) }

func newParty(seed byte) *party {
	var s [32]byte
	s[0] = seed
	priv := ed25519.NewKeyFromSeed(s[:])
	return &party{priv: priv, key: fmt.Sprintf("%x", priv.Public())}
}

// tx signs b for p with p's next nonce.
func (p *party) tx(t testing.TB, b Body) []byte {
	t.Helper()
	b.Chain, b.Nonce = "test", p.nonce
	data, err := Sign(b, p.priv)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

const minute = 1000 // ms per market minute in tests

// world is a state with a grid company and four stations.
func world(t testing.TB, rule string) (*State, *party, []*party) {
	grid := newParty(1)
	var st []*party
	g := Genesis{Params: Params{Chain: "test", MinuteMillis: minute, Rule: rule, FeePPM: 10_000}, Accounts: map[string]Account{grid.key: {Role: RoleGrid}}}
	for i := 0; i < 4; i++ {
		p := newParty(byte(10 + i))
		st = append(st, p)
		g.Accounts[p.key] = Account{Role: RoleStation, Balance: 1_000_000}
	}
	s, err := NewState(g)
	if err != nil {
		t.Fatal(err)
	}
	return s, grid, st
}

// at returns the block time at offset minutes before window w starts.
func at(w int64, minutesBefore float64) int64 {
	return w*30*minute - int64(minutesBefore*minute)
}

func deliver(t testing.TB, s *State, tx []byte, now int64) error {
	t.Helper()
	b, signer, err := Decode(tx)
	if err != nil {
		return err
	}
	err = s.Deliver(b, signer, now)
	return err
}

func mustDeliver(t testing.TB, s *State, p *party, b Body, now int64) {
	t.Helper()
	if err := deliver(t, s, p.tx(t, b), now); err != nil {
		t.Fatalf("%s: %v", b.Type, err)
	}
	p.nonce++
}

// TestTradingWindow runs one window through its phases and checks the
// seed's rules: the satisfaction rate, initial rights, clearing identical
// to market.Clear on the same book, settlement, and conservation.
func TestTradingWindow(t *testing.T) {
	for _, rule := range []string{"uniform", "pay-as-bid", "mcafee"} {
		t.Run(rule, func(t *testing.T) {
			s, grid, st := world(t, rule)
			const w = 100
			money := s.Money()
			demand := []int64{40_000, 30_000, 20_000, 10_000}
			for i, p := range st {
				mustDeliver(t, s, p, Body{Type: "demand", Window: w, Wh: demand[i]}, at(w, 28))
			}
			mustDeliver(t, s, grid, Body{Type: "margin", Window: w, Wh: 80_000}, at(w, 26))
			s.BeginBlock(1, at(w, 24)) // satisfaction: rho = 0.8
			win := s.Windows[w]
			if win.RhoPPM != 800_000 {
				t.Fatalf("rho %d ppm, want 800000", win.RhoPPM)
			}
			for i, p := range st {
				if got := win.Rights[p.key]; got != demand[i]*8/10 {
					t.Fatalf("station %d rights %d, want %d", i, got, demand[i]*8/10)
				}
			}
			// Bids: the big station buys, the small ones sell.
			now := at(w, 22)
			mustDeliver(t, s, st[0], Body{Type: "order", Window: w, Side: "buy", Price: 300, Wh: 10_000}, now)
			mustDeliver(t, s, st[1], Body{Type: "order", Window: w, Side: "buy", Price: 250, Wh: 5_000}, now)
			mustDeliver(t, s, st[2], Body{Type: "order", Window: w, Side: "sell", Price: 200, Wh: 8_000}, now)
			mustDeliver(t, s, st[3], Body{Type: "order", Window: w, Side: "sell", Price: 260, Wh: 8_000}, now)
			if s.Money() != money {
				t.Fatalf("money %d after orders, was %d", s.Money(), money)
			}
			var book []market.Order
			for _, o := range win.Orders {
				book = append(book, o.Order)
			}
			r, _ := market.ParseRule(rule)
			want, err := market.Clear(book, r, nil)
			if err != nil {
				t.Fatal(err)
			}
			s.BeginBlock(2, at(w, 18)) // clearing
			if !win.Cleared || fmt.Sprint(win.Trades) != fmt.Sprint(want.Trades) {
				t.Fatalf("ledger trades %v, market.Clear %v", win.Trades, want.Trades)
			}
			if s.Money() != money {
				t.Fatalf("money %d after settlement, was %d: not conserved", s.Money(), money)
			}
			var rights int64
			for _, v := range win.Rights {
				if v < 0 {
					t.Fatalf("negative rights %d", v)
				}
				rights += v
			}
			if rights > win.Margin {
				t.Fatalf("rights %d exceed the margin %d", rights, win.Margin)
			}
			if len(win.Trades) > 0 && s.Accounts[grid.key].Balance <= 0 {
				t.Fatalf("trades happened but the grid company got no fee")
			}
		})
	}
}

// TestRejections: every bad transaction is refused with its reason and
// leaves the state exactly as it was.
func TestRejections(t *testing.T) {
	s, grid, st := world(t, "uniform")
	const w = 50
	mustDeliver(t, s, st[0], Body{Type: "demand", Window: w, Wh: 1000}, at(w, 28))
	good := st[0].tx(t, Body{Type: "transfer", To: st[1].key, Amount: 5})
	forged := append([]byte(nil), good...)
	forged[len(forged)/2] ^= 1
	other := newParty(99)
	other.nonce = st[0].nonce
	wrongChain, _ := Sign(Body{Chain: "other", Nonce: st[0].nonce, Type: "transfer", To: st[1].key, Amount: 5}, st[0].priv)
	cases := []struct {
		name string
		tx   []byte
		now  int64
		want error
	}{
		{"not json", []byte("{"), 0, ErrMalformed},
		{"unsigned", []byte(`{"body":"e30=","pub":"","sig":""}`), 0, ErrMalformed},
		{"forged", forged, 0, nil}, // either malformed or bad signature
		{"replayed nonce", st[0].tx(t, Body{Type: "transfer", To: st[1].key, Amount: 5, Nonce: 0}), 0, nil},
		{"wrong chain", wrongChain, 0, ErrChain},
		{"unknown account", other.tx(t, Body{Type: "transfer", To: st[1].key, Amount: 5}), 0, ErrAccount},
		{"demand out of phase", st[1].tx(t, Body{Type: "demand", Window: w, Wh: 1000}), at(w, 10), ErrPhase},
		{"margin by a station", st[1].tx(t, Body{Type: "margin", Window: w, Wh: 1000}), at(w, 28), ErrRole},
		{"selling rights not held", st[1].tx(t, Body{Type: "order", Window: w, Side: "sell", Price: 10, Wh: 5000}), at(w, 22), ErrFunds},
		{"buying beyond balance", st[1].tx(t, Body{Type: "order", Window: w, Side: "buy", Price: 1 << 30, Wh: 1 << 30}), at(w, 22), ErrFunds},
		{"over quantity", st[1].tx(t, Body{Type: "order", Window: w, Side: "buy", Price: 1, Wh: market.MaxQty + 1}), at(w, 22), ErrValue},
		{"overdraft transfer", st[1].tx(t, Body{Type: "transfer", To: grid.key, Amount: 10_000_000}), 0, ErrFunds},
		{"unknown type", st[1].tx(t, Body{Type: "mint"}), 0, ErrMalformed},
	}
	// Apply the good one so that its replay is a replay.
	if err := deliver(t, s, good, 0); err != nil {
		t.Fatal(err)
	}
	st[0].nonce++
	before := s.Hash()
	for _, c := range cases {
		err := deliver(t, s, c.tx, c.now)
		if err == nil {
			t.Errorf("%s: accepted", c.name)
			continue
		}
		if c.want != nil && !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		}
		if Code(err) == 0 {
			t.Errorf("%s: result code 0 for a rejection", c.name)
		}
		if string(s.Hash()) != string(before) {
			t.Fatalf("%s: a rejected transaction changed the state", c.name)
		}
	}
	if err := deliver(t, s, good, 0); !errors.Is(err, ErrNonce) {
		t.Errorf("replaying an applied transaction: %v, want ErrNonce", err)
	}
}

// TestInvariantsRandom drives random traffic through many windows and
// checks after every block: money conserved, rights within the margin and
// never negative, no order filled beyond its quantity.
func TestInvariantsRandom(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 1))
	s, grid, st := world(t, "mcafee")
	money := s.Money()
	for w := int64(10); w < 30; w++ {
		for _, p := range st {
			_ = deliver(t, s, p.tx(t, Body{Type: "demand", Window: w, Wh: int64(1000 + rng.IntN(50_000))}), at(w, 27))
			p.nonce++
		}
		_ = deliver(t, s, grid.tx(t, Body{Type: "margin", Window: w, Wh: int64(rng.IntN(150_000))}), at(w, 26))
		grid.nonce++
		s.BeginBlock(w*10, at(w, 24))
		for k := 0; k < 20; k++ {
			p := st[rng.IntN(len(st))]
			side := "buy"
			if rng.IntN(2) == 0 {
				side = "sell"
			}
			err := deliver(t, s, p.tx(t, Body{Type: "order", Window: w, Side: side, Price: int64(rng.IntN(500)), Wh: int64(1 + rng.IntN(20_000))}), at(w, 21))
			if err == nil {
				p.nonce++
			}
		}
		s.BeginBlock(w*10+1, at(w, 16))
		if s.Money() != money {
			t.Fatalf("window %d: money %d, genesis %d", w, s.Money(), money)
		}
		// Every unit the grid company holds is accounted for by some
		// window's income: fees, congestion fees, spread.
		var income int64
		for _, win := range s.Windows {
			income += win.Income.Total()
		}
		if got := s.Accounts[grid.key].Balance; got != income {
			t.Fatalf("window %d: the grid company holds %d, the windows' income sums to %d", w, got, income)
		}
		win := s.Windows[w]
		var rights int64
		for _, v := range win.Rights {
			if v < 0 {
				t.Fatalf("window %d: negative rights", w)
			}
			rights += v
		}
		if win.HasMarg && rights > win.Margin {
			t.Fatalf("window %d: rights %d exceed margin %d", w, rights, win.Margin)
		}
		filled := map[string]int64{}
		for _, tr := range win.Trades {
			filled[tr.Buy] += tr.Qty
			filled[tr.Sell] += tr.Qty
		}
		for _, o := range win.Orders {
			if filled[o.ID] > o.Qty {
				t.Fatalf("order %s filled %d of %d", o.ID, filled[o.ID], o.Qty)
			}
		}
	}
}

func FuzzDecode(f *testing.F) {
	p := newParty(3)
	f.Add(p.tx(f, Body{Type: "transfer", To: "x", Amount: 1}))
	f.Add([]byte(`{"body":"","pub":"","sig":""}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		b, signer, err := Decode(data)
		if err == nil && (b == nil || len(signer) != 64) {
			t.Fatal("accepted without a signer")
		}
	})
}
