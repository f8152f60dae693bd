package main

import (
	"path/filepath"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// ledgerServeFlags are gridveil serve's flags for the ledger role.
var ledgerServeFlags ledgerOptions

func init() {
	serveRoles["ledger"] = serveLedger
	serveFlagHooks = append(serveFlagHooks, func(fs *pflag.FlagSet) {
		fs.StringVar(&ledgerServeFlags.home, "home", "", "ledger: CometBFT home directory (default DATA/ledger)")
		fs.StringVar(&ledgerServeFlags.genesis, "genesis", "", "ledger: genesis app state (JSON) for a new home; default: a demo consortium whose keys go to HOME/keys.json")
		fs.StringVar(&ledgerServeFlags.p2p, "p2p", "tcp://127.0.0.1:26656", "ledger: P2P listen address")
		fs.StringVar(&ledgerServeFlags.peers, "peers", "", "ledger: persistent peers id@host:port,... of a validator set")
		fs.DurationVar(&ledgerServeFlags.block, "block", time.Second, "ledger: target time between blocks")
	})
}

// serveLedger runs one ledger validator (docs/ARCHITECTURE.md C7) until the command's
// context ends; --addr is its RPC address (default 127.0.0.1:26657).
func serveLedger(cmd *cobra.Command, opts *serveOptions) error {
	o := ledgerServeFlags
	if o.home == "" {
		o.home = filepath.Join(opts.data, "ledger")
	}
	o.rpc = "tcp://127.0.0.1:26657"
	if opts.addr != "" {
		o.rpc = "tcp://" + opts.addr
	}
	return runLedger(opts.ctx, cmd.OutOrStdout(), o)
}
