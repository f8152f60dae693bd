package ledger

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	cfg "github.com/cometbft/cometbft/config"
	cmtlog "github.com/cometbft/cometbft/libs/log"
	"github.com/cometbft/cometbft/node"
	"github.com/cometbft/cometbft/p2p"
	"github.com/cometbft/cometbft/privval"
	"github.com/cometbft/cometbft/proxy"
	rpclocal "github.com/cometbft/cometbft/rpc/client/local"
	"github.com/cometbft/cometbft/types"
)

// NodeConfig configures an embedded validator.
type NodeConfig struct {
	Home    string        // CometBFT home: config, keys, block store, and app/state.json
	Genesis *Genesis      // written to the genesis file on first start; ignored afterwards
	Block   time.Duration // target time between blocks (timeout_commit); 0: 1 s
	RPC     string        // RPC listen address; "" disables it (tests use the local client)
	P2P     string        // P2P listen address; "" picks a free loopback port
	Log     io.Writer     // CometBFT's log; nil discards it
}

// Node is one CometBFT validator running the ledger application in this
// process: the default, single-validator consortium (DESIGN.md C7).
type Node struct {
	App    *App
	node   *node.Node
	Client *rpclocal.Local
}

// StartNode initialises Home on first use (keys, genesis with this node as
// the only validator) and starts the node. It replays only the blocks
// after the application's last persisted commit.
func StartNode(c NodeConfig) (*Node, error) {
	if c.Home == "" {
		return nil, errors.New("ledger: NodeConfig.Home is empty")
	}
	conf := cfg.DefaultConfig()
	conf.SetRoot(c.Home)
	cfg.EnsureRoot(c.Home)
	conf.Moniker = "gridveil"
	block := c.Block
	if block == 0 {
		block = time.Second
	}
	conf.Consensus.TimeoutCommit = block
	conf.Consensus.TimeoutPropose = block
	conf.Consensus.CreateEmptyBlocks = true
	conf.RPC.ListenAddress = c.RPC
	if c.P2P == "" {
		c.P2P = "tcp://127.0.0.1:0"
	}
	conf.P2P.ListenAddress = c.P2P
	conf.P2P.AllowDuplicateIP = true
	conf.Instrumentation.Prometheus = false
	conf.TxIndex.Indexer = "null"

	pv := privval.LoadOrGenFilePV(conf.PrivValidatorKeyFile(), conf.PrivValidatorStateFile())
	nodeKey, err := p2p.LoadOrGenNodeKey(conf.NodeKeyFile())
	if err != nil {
		return nil, fmt.Errorf("ledger: node key: %w", err)
	}
	if _, err := os.Stat(conf.GenesisFile()); errors.Is(err, os.ErrNotExist) {
		if c.Genesis == nil {
			return nil, errors.New("ledger: a new home needs a Genesis")
		}
		if err := writeGenesis(conf.GenesisFile(), c.Genesis, pv); err != nil {
			return nil, err
		}
	}
	app, err := NewApp(filepath.Join(c.Home, "app"))
	if err != nil {
		return nil, err
	}
	out := c.Log
	if out == nil {
		out = io.Discard
	}
	logger := cmtlog.NewTMLogger(cmtlog.NewSyncWriter(out))
	n, err := node.NewNode(conf, pv, nodeKey, proxy.NewLocalClientCreator(app),
		node.DefaultGenesisDocProviderFunc(conf), cfg.DefaultDBProvider, node.DefaultMetricsProvider(conf.Instrumentation), logger)
	if err != nil {
		return nil, fmt.Errorf("ledger: %w", err)
	}
	if err := n.Start(); err != nil {
		return nil, fmt.Errorf("ledger: starting node: %w", err)
	}
	return &Node{App: app, node: n, Client: rpclocal.New(n)}, nil
}

func writeGenesis(path string, g *Genesis, pv *privval.FilePV) error {
	appState, err := json.Marshal(g)
	if err != nil {
		return err
	}
	pub, err := pv.GetPubKey()
	if err != nil {
		return err
	}
	doc := types.GenesisDoc{
		ChainID:         g.Params.Chain,
		GenesisTime:     time.Now().UTC(),
		ConsensusParams: types.DefaultConsensusParams(),
		Validators:      []types.GenesisValidator{{Address: pub.Address(), PubKey: pub, Power: 10, Name: "gridveil"}},
		AppState:        appState,
	}
	if err := doc.ValidateAndComplete(); err != nil {
		return fmt.Errorf("ledger: genesis: %w", err)
	}
	return doc.SaveAs(path)
}

// Stop stops the node and waits for it.
func (n *Node) Stop() error {
	if err := n.node.Stop(); err != nil {
		return err
	}
	n.node.Wait()
	return nil
}
