package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/gridveil/gridveil/auth"
	"github.com/gridveil/gridveil/auth/authnet"
)

// serveOptions are the flags of gridveil serve, shared by every role.
type serveOptions struct {
	role string
	addr string // listen address; "" is the role's default
	data string // data directory root; each role keeps its files in a subdirectory
	// ctx ends on SIGINT or SIGTERM, or with the command's context.
	ctx context.Context

	// CA and LAG roles.
	caAddr        string
	caPublic      string
	tokenFile     string
	lagID         string
	group         string
	schemes       string
	autoDischarge bool
	aggregateMin  int
	quiet         bool
}

// serveRoles maps each role of gridveil serve to the function that runs it
// until opts.ctx ends. Another file may add a role from its init function;
// a role that needs flags of its own adds them with serveFlagHooks.
var serveRoles = map[string]func(cmd *cobra.Command, opts *serveOptions) error{
	"ca":  serveCA,
	"lag": serveLAG,
}

// serveFlagHooks add role-specific flags to gridveil serve.
var serveFlagHooks []func(fs *pflag.FlagSet)

// Default loopback addresses of the roles.
const (
	defaultCAAddr  = "127.0.0.1:7401"
	defaultLAGAddr = "127.0.0.1:7402"
)

func roleNames() []string {
	names := make([]string, 0, len(serveRoles))
	for r := range serveRoles {
		names = append(names, r)
	}
	slices.Sort(names)
	return names
}

func newServeCmd() *cobra.Command {
	o := &serveOptions{}
	cmd := &cobra.Command{
		Use:   "serve --role ROLE",
		Short: "Run one party of the platform as a network service",
		Long: `serve runs one party as its own process until interrupted.

Roles: ` + strings.Join(roleNames(), ", ") + `.

  ca    the central authority (DESIGN.md C6): enrols LAGs and vehicles,
        checks every session and issues permits, traces, revokes, asks for
        discharges. Writes public.key and enrol.token to its data directory:
        LAGs and vehicles need both; and admin.key, with which gridveil ca
        traces and revokes through it.
  lag   a local aggregator: serves vehicles over Noise NK sessions and keeps
        a Noise IK link to the CA. Enrols itself with the CA on first start.
        Appends the evidence of every session it admits to evidence.jsonl,
        from which gridveil ca trace asks the CA who it was.
  ledger
        one validator of the consortium ledger (DESIGN.md C7, docs/LEDGER.md):
        a CometBFT node with the market application; --addr is its RPC
        address (default 127.0.0.1:26657), its home --home (default
        --data/ledger). Without --genesis a new home gets a demo consortium.

Every role keeps its keys and state in --data/<role> (a LAG in
--data/lag-<id>), written atomically, and listens on loopback unless --addr
says otherwise. The address actually bound is written to <dir>/addr. Each
role prints what it learns, one line per event (--quiet: only errors).
Wire format and threat model: docs/AUTH.md.`,
		Example: `  gridveil serve --role ca &
  gridveil serve --role lag &
  gridveil agent bv --count 5`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			run, ok := serveRoles[o.role]
			if !ok {
				return fmt.Errorf("--role %q: use one of %s", o.role, strings.Join(roleNames(), ", "))
			}
			parent := cmd.Context()
			if parent == nil {
				parent = context.Background()
			}
			ctx, stop := signal.NotifyContext(parent, os.Interrupt, syscall.SIGTERM)
			defer stop()
			o.ctx = ctx
			return run(cmd, o)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&o.role, "role", "", "the party to run: "+strings.Join(roleNames(), ", "))
	fl.StringVar(&o.addr, "addr", "", "listen address (default: "+defaultCAAddr+" for ca, "+defaultLAGAddr+" for lag, 127.0.0.1:26657 for ledger)")
	fl.StringVar(&o.data, "data", "gridveil-data", "data directory root")
	fl.StringVar(&o.caAddr, "ca-addr", "", "lag: the CA's address (default: --data/ca/addr if present, else "+defaultCAAddr+")")
	fl.StringVar(&o.caPublic, "ca-public", "", "lag: the CA's public.key (default --data/ca/public.key)")
	fl.StringVar(&o.tokenFile, "token-file", "", "lag: the CA's enrol.token, needed on first start (default --data/ca/enrol.token)")
	fl.StringVar(&o.lagID, "id", "lag-1", "lag: this LAG's identifier")
	fl.StringVar(&o.group, "group", "utility-a", "lag: the utility this LAG belongs to (home network of its vehicles)")
	fl.StringVar(&o.schemes, "schemes", "pseudonym,lsag", "lag: credential schemes offered, in order of preference")
	fl.BoolVar(&o.autoDischarge, "auto-discharge", true, "ca: ask a LAG's storage vehicles to discharge whenever one reports full")
	fl.IntVar(&o.aggregateMin, "aggregate-min", 3, "ca: fewest vehicles an aggregate told to a LAG may cover")
	fl.BoolVar(&o.quiet, "quiet", false, "print errors only")
	_ = cmd.MarkFlagRequired("role")
	for _, hook := range serveFlagHooks {
		hook(fl)
	}
	return cmd
}

// eventPrinter prints a party's events, one line each, safely from any
// goroutine.
func eventPrinter(w io.Writer, who string, quiet bool) authnet.EventFunc {
	var mu sync.Mutex
	return func(e auth.Event) {
		if quiet && e.Err == nil {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		fmt.Fprintf(w, "%s %-4s %s\n", time.Now().Format("15:04:05.000"), who, e)
	}
}

// keepEvidence appends the evidence of every session the LAG admits to its
// evidence file, for the CA to trace later (gridveil ca trace), and passes
// the other events on.
func keepEvidence(l *authnet.EvidenceLog, log *slog.Logger, next authnet.EventFunc) authnet.EventFunc {
	return func(e auth.Event) {
		if e.Evidence == nil {
			next(e)
			return
		}
		if err := l.Append(e.Evidence); err != nil {
			log.Error("keeping session evidence", "err", err)
		}
	}
}

// listen binds addr (or def) and records the bound address in dir/addr.
func listen(store *authnet.Store, addr, def string) (net.Listener, error) {
	if addr == "" {
		addr = def
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	if err := store.Write("addr", []byte(ln.Addr().String()+"\n"), 0o644); err != nil {
		ln.Close()
		return nil, err
	}
	return ln, nil
}

func serveCA(cmd *cobra.Command, o *serveOptions) error {
	out := cmd.OutOrStdout()
	store, err := authnet.OpenStore(filepath.Join(o.data, "ca"))
	if err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	srv, err := authnet.OpenCA(store, auth.CAConfig{AutoDischarge: o.autoDischarge, AggregateMin: o.aggregateMin}, log, eventPrinter(out, "ca", o.quiet))
	if err != nil {
		return err
	}
	ln, err := listen(store, o.addr, defaultCAAddr)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "ca: listening on %s; public key %s, enrolment token %s; stop with Ctrl-C\n",
		ln.Addr(), store.Path("public.key"), store.Path("enrol.token"))
	return srv.Serve(o.ctx, ln)
}

// caFiles resolves the CA's address, public key and token from flags or
// the CA's data directory under the same root.
func caFiles(data, caAddr, caPublic, tokenFile string) (addr string, pub auth.CAPublic, token [32]byte, haveToken bool, err error) {
	caDir := filepath.Join(data, "ca")
	addr = caAddr
	if addr == "" {
		addr = defaultCAAddr
		if b, err := os.ReadFile(filepath.Join(caDir, "addr")); err == nil {
			addr = strings.TrimSpace(string(b))
		}
	}
	if caPublic == "" {
		caPublic = filepath.Join(caDir, "public.key")
	}
	if pub, err = authnet.ReadCAPublic(caPublic); err != nil {
		return "", pub, token, false, fmt.Errorf("the CA's public key: %w (give --ca-public, or start gridveil serve --role ca with the same --data first)", err)
	}
	if tokenFile == "" {
		tokenFile = filepath.Join(caDir, "enrol.token")
	}
	token, err = authnet.ReadToken(tokenFile)
	return addr, pub, token, err == nil, nil
}

func parseSchemes(s string) ([]auth.Scheme, error) {
	var out []auth.Scheme
	for _, name := range strings.Split(s, ",") {
		sc, err := auth.ParseScheme(strings.TrimSpace(name))
		if err != nil {
			return nil, err
		}
		out = append(out, sc)
	}
	return out, nil
}

func serveLAG(cmd *cobra.Command, o *serveOptions) error {
	out := cmd.OutOrStdout()
	schemes, err := parseSchemes(o.schemes)
	if err != nil {
		return fmt.Errorf("--schemes: %w", err)
	}
	caAddr, pub, token, _, err := caFiles(o.data, o.caAddr, o.caPublic, o.tokenFile)
	if err != nil {
		return err
	}
	store, err := authnet.OpenStore(filepath.Join(o.data, "lag-"+o.lagID))
	if err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	evidence, err := authnet.OpenEvidenceLog(store)
	if err != nil {
		return err
	}
	defer evidence.Close()
	ctx, cancel := context.WithTimeout(o.ctx, 30*time.Second)
	srv, err := authnet.OpenLAG(ctx, store, authnet.LAGOptions{ID: o.lagID, Group: o.group, CAAddr: caAddr, CA: pub, Token: token, Schemes: schemes},
		log, keepEvidence(evidence, log, eventPrinter(out, "lag", o.quiet)))
	cancel()
	if err != nil {
		return err
	}
	ln, err := listen(store, o.addr, defaultLAGAddr)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "lag %s (group %s): listening on %s, CA at %s; stop with Ctrl-C\n", o.lagID, o.group, ln.Addr(), caAddr)
	return srv.Serve(o.ctx, ln)
}
