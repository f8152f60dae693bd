package main

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/gridveil/gridveil/ledger"
)

// ledgerOptions configure one ledger node process.
type ledgerOptions struct {
	home    string // CometBFT home; created on first start
	genesis string // genesis app state (JSON ledger.Genesis) for a new home; "" makes a demo consortium
	rpc     string // RPC listen address
	p2p     string // P2P listen address
	peers   string // persistent peers for a validator set
	block   time.Duration
}

// demoKeys is what a new demo consortium writes next to its genesis: the
// accounts' private keys, so that a user can sign transactions to it.
type demoKeys struct {
	Chain   string            `json:"chain"`
	Grid    string            `json:"grid"`     // hex private key seed of the grid company
	Station map[string]string `json:"stations"` // name -> hex private key seed
}

// ledgerLogFile, in a validator's home, receives CometBFT's log.
const ledgerLogFile = "cometbft.log"

// runLedger starts a ledger validator on o.home and runs it until ctx is
// done. A new home needs a genesis: o.genesis, or a demo consortium of a
// grid company and 12 stations whose keys it writes to home/keys.json
// (mode 0600).
func runLedger(ctx context.Context, out io.Writer, o ledgerOptions) error {
	if o.home == "" {
		return errors.New("ledger: give --home, the node's data directory")
	}
	var g *ledger.Genesis
	if _, err := os.Stat(filepath.Join(o.home, "config", "genesis.json")); errors.Is(err, os.ErrNotExist) {
		if g, err = loadOrMakeGenesis(o); err != nil {
			return err
		}
	}
	// CometBFT's own log (consensus, p2p, block store) is kept at info
	// level in the home: what the node did before a failure is there.
	if err := os.MkdirAll(o.home, 0o700); err != nil {
		return fmt.Errorf("ledger: home: %w", err)
	}
	logPath := filepath.Join(o.home, ledgerLogFile)
	logFile, err := os.OpenFile(logPath, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("ledger: CometBFT's log: %w", err)
	}
	defer logFile.Close()
	n, err := ledger.StartNode(ledger.NodeConfig{Home: o.home, Genesis: g, RPC: o.rpc, P2P: o.p2p, Peers: o.peers, Block: o.block, Log: logFile})
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "ledger node running: home %s, RPC %s, CometBFT's log %s; stop with Ctrl-C\n", o.home, o.rpc, logPath)
	<-ctx.Done()
	if err := n.Stop(); err != nil {
		return fmt.Errorf("ledger: stopping: %w", err)
	}
	s := n.App.State()
	if s != nil {
		fmt.Fprintf(out, "ledger node stopped at height %d, app hash %x\n", s.Height, s.Hash())
	}
	return nil
}

func loadOrMakeGenesis(o ledgerOptions) (*ledger.Genesis, error) {
	if o.genesis != "" {
		data, err := os.ReadFile(o.genesis)
		if err != nil {
			return nil, fmt.Errorf("ledger: reading genesis: %w", err)
		}
		var g ledger.Genesis
		if err := json.Unmarshal(data, &g); err != nil {
			return nil, fmt.Errorf("ledger: %s is not a ledger genesis (JSON with params and accounts): %w", o.genesis, err)
		}
		return &g, nil
	}
	keys := demoKeys{Chain: "gridveil-demo", Station: map[string]string{}}
	g := &ledger.Genesis{Params: ledger.Params{Chain: keys.Chain, MinuteMillis: 60_000, Rule: "uniform", FeePPM: 10_000, Penalty: 500}, Accounts: map[string]ledger.Account{}}
	newKey := func() (string, string, error) {
		pub, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return "", "", err
		}
		return fmt.Sprintf("%x", pub), fmt.Sprintf("%x", priv.Seed()), nil
	}
	pub, seed, err := newKey()
	if err != nil {
		return nil, err
	}
	keys.Grid = seed
	g.Accounts[pub] = ledger.Account{Role: ledger.RoleGrid}
	for i := 0; i < 12; i++ {
		pub, seed, err := newKey()
		if err != nil {
			return nil, err
		}
		keys.Station[fmt.Sprintf("station-%02d", i)] = seed
		g.Accounts[pub] = ledger.Account{Role: ledger.RoleStation, Balance: 1_000_000_000}
	}
	if err := os.MkdirAll(o.home, 0o700); err != nil {
		return nil, err
	}
	data, _ := json.MarshalIndent(keys, "", "  ")
	if err := os.WriteFile(filepath.Join(o.home, "keys.json"), data, 0o600); err != nil {
		return nil, fmt.Errorf("ledger: writing demo keys: %w", err)
	}
	return g, nil
}
