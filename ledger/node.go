package ledger

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	abci "github.com/cometbft/cometbft/abci/types"
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
	Home    string        // CometBFT home: config, keys, block store, and app/state.db
	Genesis *Genesis      // written to the genesis file on first start; ignored afterwards
	Block   time.Duration // target time between blocks (timeout_commit); 0: 1 s
	RPC     string        // RPC listen address; "" disables it (tests use the local client)
	P2P     string        // P2P listen address; "" picks a free loopback port
	Peers   string        // persistent peers, "id@host:port,..." (a validator set)
	Log     io.Writer     // CometBFT's log, at info level; nil discards it
}

// Node is one CometBFT validator running the ledger application in this
// process: the default, single-validator consortium (docs/ARCHITECTURE.md C7).
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
	app, err := NewApp(filepath.Join(c.Home, "app"))
	if err != nil {
		return nil, err
	}
	n, err := startWith(c, app)
	if err != nil {
		app.Close()
		return nil, err
	}
	return &Node{App: app, node: n, Client: rpclocal.New(n)}, nil
}

// startWith runs app in a CometBFT node configured from c: StartNode's
// settings, shared with the benchmark that runs CometBFT's kvstore example
// the same way.
func startWith(c NodeConfig, app abci.Application) (*node.Node, error) {
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
	conf.P2P.PersistentPeers = c.Peers
	conf.P2P.AllowDuplicateIP = true
	conf.P2P.AddrBookStrict = false
	// Validators reach each other as persistent peers; without peer exchange
	// no address book is saved to config/ by a goroutine that outlives Stop.
	conf.P2P.PexReactor = false
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
	out := c.Log
	if out == nil {
		out = io.Discard
	}
	// Info, not debug: debug logs every vote and message, gigabytes a day.
	logger := cmtlog.NewFilter(cmtlog.NewTMLogger(cmtlog.NewSyncWriter(out)), cmtlog.AllowInfo())
	// One lock per ABCI connection, not one for all four: CheckTx (the
	// mempool's connection) then verifies signatures while the consensus
	// connection runs FinalizeBlock and Commit's synced write, instead of
	// waiting for them. App serialises what must be (its own mutex), and
	// CometBFT keeps the mempool locked while a block commits.
	n, err := node.NewNode(conf, pv, nodeKey, proxy.NewConnSyncLocalClientCreator(app),
		node.DefaultGenesisDocProviderFunc(conf), cfg.DefaultDBProvider, node.DefaultMetricsProvider(conf.Instrumentation), logger)
	if err != nil {
		return nil, fmt.Errorf("ledger: %w", err)
	}
	if err := n.Start(); err != nil {
		return nil, fmt.Errorf("ledger: starting node: %w", err)
	}
	return n, nil
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

// Stop stops the node, waits for it and closes the application's state
// database, so that another App may open the home.
func (n *Node) Stop() error {
	if err := n.node.Stop(); err != nil {
		return err
	}
	n.node.Wait()
	return n.App.Close()
}

// InitNetwork prepares homes for a validator set of n nodes under dir
// (dir/node0 ...): each gets its keys, all share one genesis in which
// every node has voting power power[i] (10 each if power is nil), and each
// lists the others as persistent peers, node i on loopback port ports[i].
// Start each with StartNode(configs[i]).
func InitNetwork(dir string, n int, g *Genesis, power []int64, ports []int, block time.Duration) ([]NodeConfig, error) {
	if n < 1 || (power != nil && len(power) != n) || len(ports) < n {
		return nil, fmt.Errorf("ledger: a network needs n >= 1 nodes, one power and one P2P port per node")
	}
	appState, err := json.Marshal(g)
	if err != nil {
		return nil, err
	}
	doc := types.GenesisDoc{ChainID: g.Params.Chain, GenesisTime: time.Now().UTC(), ConsensusParams: types.DefaultConsensusParams(), AppState: appState}
	configs := make([]NodeConfig, n)
	var ids []string
	for i := 0; i < n; i++ {
		home := filepath.Join(dir, fmt.Sprintf("node%d", i))
		conf := cfg.DefaultConfig()
		conf.SetRoot(home)
		cfg.EnsureRoot(home)
		pv := privval.LoadOrGenFilePV(conf.PrivValidatorKeyFile(), conf.PrivValidatorStateFile())
		nodeKey, err := p2p.LoadOrGenNodeKey(conf.NodeKeyFile())
		if err != nil {
			return nil, err
		}
		pub, err := pv.GetPubKey()
		if err != nil {
			return nil, err
		}
		pw := int64(10)
		if power != nil {
			pw = power[i]
		}
		doc.Validators = append(doc.Validators, types.GenesisValidator{Address: pub.Address(), PubKey: pub, Power: pw, Name: fmt.Sprintf("node%d", i)})
		addr := fmt.Sprintf("127.0.0.1:%d", ports[i])
		ids = append(ids, fmt.Sprintf("%s@%s", nodeKey.ID(), addr))
		configs[i] = NodeConfig{Home: home, Block: block, P2P: "tcp://" + addr}
	}
	if err := doc.ValidateAndComplete(); err != nil {
		return nil, fmt.Errorf("ledger: genesis: %w", err)
	}
	for i := range configs {
		conf := cfg.DefaultConfig()
		conf.SetRoot(configs[i].Home)
		if err := doc.SaveAs(conf.GenesisFile()); err != nil {
			return nil, err
		}
		var peers []string
		for j, id := range ids {
			if j != i {
				peers = append(peers, id)
			}
		}
		configs[i].Peers = strings.Join(peers, ",")
	}
	return configs, nil
}
