package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
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
	credential    string
	sharedToken   bool
	maxPseudonyms int
	lagID         string
	group         string
	schemes       string
	autoDischarge bool
	aggregateMin  int
	quiet         bool
	caWait        time.Duration
	// lagReady, when set, is given the LAG server once it is open (the
	// OCPP endpoint asks it which sessions it holds).
	lagReady func(*authnet.LAGServer)
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

  ca    the central authority (docs/ARCHITECTURE.md C6): enrols LAGs and vehicles,
        checks every session and issues permits, traces, revokes, asks for
        discharges. Writes public.key to its data directory (LAGs and
        vehicles need it) and admin.key, with which gridveil ca issues
        enrolment credentials, traces and revokes through it. A new vehicle
        or LAG enrols only with the credential issued for its name
        (gridveil ca issue); --shared-token keeps the shared enrol.token
        of earlier versions working during a migration.
  lag   a local aggregator: serves vehicles over Noise NK sessions and keeps
        a Noise IK link to the CA. Enrols itself with the CA on first start,
        with its credential (--credential, default
        --data/credentials/lag-<id>.cred: gridveil ca issue lag <id>);
        started before the CA or its credential, it waits for them
        (--ca-wait, default 30s).
        Appends the evidence of every session it admits to evidence.jsonl,
        from which gridveil ca trace asks the CA who it was.
  ledger
        one validator of the consortium ledger (docs/ARCHITECTURE.md C7, docs/LEDGER.md):
        a CometBFT node with the market application; --addr is its RPC
        address (default 127.0.0.1:26657), its home --home (default
        --data/ledger). Without --genesis a new home gets a demo consortium.
  nats  the embedded NATS server the platform's parties talk over
        (--addr, default 127.0.0.1:4222; --cluster/--routes for a cluster
        node). Writes its client URL to --data/nats/addr.
  so    the system operator's coordination for one day (docs/PLATFORM.md):
        saves its state in --data/so/state after every round, resumes from
        it, writes --data/so/so.json at the end.
  ev    hosts every --hosts-th vehicle from the --host-th; writes their
        final schedules to --data/ev-HOST/schedules.json.

Every role keeps its keys and state in --data/<role> (a LAG in
--data/lag-<id>), written atomically, and listens on loopback unless --addr
says otherwise. A role binds its port before it writes any file, and the
address actually bound is written to <dir>/addr last, once it is ready; a
start that fails removes what it wrote in a directory it created. Each
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
	fl.StringVar(&o.credential, "credential", "", "lag: its enrolment credential, needed on first start (default --data/credentials/lag-<id>.cred, written by gridveil ca issue lag <id>)")
	fl.StringVar(&o.tokenFile, "token-file", "", "lag: the shared enrol.token of a CA started with --shared-token, instead of a credential (default --data/ca/enrol.token if present)")
	fl.BoolVar(&o.sharedToken, "shared-token", false, "ca: also admit new vehicles and LAGs with the shared enrol.token of earlier versions (a migration: each use is logged; issue credentials instead)")
	fl.IntVar(&o.maxPseudonyms, "max-pseudonyms", 2000, "ca: pseudonym certificates one vehicle may obtain per validity period")
	fl.StringVar(&o.lagID, "id", "lag-1", "lag: this LAG's identifier")
	fl.StringVar(&o.group, "group", "utility-a", "lag: the utility this LAG belongs to (home network of its vehicles)")
	fl.StringVar(&o.schemes, "schemes", "pseudonym,lsag", "lag: credential schemes offered, in order of preference")
	fl.BoolVar(&o.autoDischarge, "auto-discharge", true, "ca: ask a LAG's storage vehicles to discharge whenever one reports full")
	fl.IntVar(&o.aggregateMin, "aggregate-min", 3, "ca: fewest vehicles an aggregate told to a LAG may cover")
	fl.DurationVar(&o.caWait, "ca-wait", 30*time.Second, "lag: how long to wait for the CA's files and for the CA to answer, on a first start")
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

// bind listens on addr (or def). Roles bind before they create any file,
// so that a start that cannot listen leaves nothing behind.
func bind(addr, def string) (net.Listener, error) {
	if addr == "" {
		addr = def
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listening on %s: %w (is another gridveil serve running there? stop it, or give --addr)", addr, err)
	}
	return ln, nil
}

// recordAddr writes the bound address to dir/addr: written last, once the
// role is ready, it is what other processes wait for.
func recordAddr(store *authnet.Store, ln net.Listener) error {
	return store.Write("addr", []byte(ln.Addr().String()+"\n"), 0o644)
}

// freshDir remembers which of a role's directories (the data root, the
// role's own) did not exist before this start, so that a start that fails
// can take back what it wrote: undo removes the named files and then the
// directories it created, if they are empty. A directory that existed
// before is never touched, so no earlier key or state is lost.
type freshDir struct {
	dirs []string // created by this start, innermost last
	dir  string
}

func newFreshDir(root, dir string) *freshDir {
	f := &freshDir{dir: dir}
	for _, d := range []string{root, dir} {
		if _, err := os.Stat(d); errors.Is(err, fs.ErrNotExist) {
			f.dirs = append(f.dirs, d)
		}
	}
	return f
}

func (f *freshDir) undo(files ...string) {
	if len(f.dirs) == 0 || f.dirs[len(f.dirs)-1] != f.dir {
		return // the role's directory predates this start
	}
	for _, name := range files {
		os.Remove(filepath.Join(f.dir, name))
	}
	for i := len(f.dirs) - 1; i >= 0; i-- {
		os.Remove(f.dirs[i]) // fails, and keeps it, if anything else is inside
	}
}

func serveCA(cmd *cobra.Command, o *serveOptions) (err error) {
	out := cmd.OutOrStdout()
	ln, err := bind(o.addr, defaultCAAddr)
	if err != nil {
		return err
	}
	dir := filepath.Join(o.data, "ca")
	fresh := newFreshDir(o.data, dir)
	defer func() {
		if ln != nil { // the start failed before serving
			ln.Close()
			fresh.undo(append(authnet.CAFiles, authnet.AuthEventsFile)...)
		}
	}()
	store, err := authnet.OpenStore(dir)
	if err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	if o.maxPseudonyms < 1 {
		return fmt.Errorf("--max-pseudonyms %d: give at least 1", o.maxPseudonyms)
	}
	authEvents, err := authnet.OpenAuthEventLog(store) // the dashboard's anonymous events (docs/PLATFORM.md)
	if err != nil {
		return err
	}
	defer authEvents.Close()
	srv, err := authnet.OpenCA(store, auth.CAConfig{AutoDischarge: o.autoDischarge, AggregateMin: o.aggregateMin, SharedToken: o.sharedToken,
		MaxPseudonymsPerPeriod: o.maxPseudonyms}, log, authEvents.Wrap("ca", eventPrinter(out, "ca", o.quiet)))
	if err != nil {
		return err
	}
	if err := recordAddr(store, ln); err != nil {
		return err
	}
	admission := "new vehicles and LAGs enrol with credentials issued by gridveil ca issue"
	if o.sharedToken {
		admission = "and, during the migration, with the shared token " + store.Path("enrol.token")
		admission = "new vehicles and LAGs enrol with credentials issued by gridveil ca issue " + admission
	} else if store.Exists("enrol.token") {
		log.Warn("enrol.token is no longer accepted: vehicles and LAGs that are not enrolled yet need a credential each (gridveil ca issue); serve --role ca --shared-token accepts the token during a migration", "file", store.Path("enrol.token"))
	}
	fmt.Fprintf(out, "ca: listening on %s; public key %s; %s; stop with Ctrl-C\n",
		ln.Addr(), store.Path("public.key"), admission)
	l := ln
	ln = nil
	return srv.Serve(o.ctx, l)
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
	if o.caWait < 0 {
		return fmt.Errorf("--ca-wait %v: give a duration of 0 or more", o.caWait)
	}
	ln, err := bind(o.addr, defaultLAGAddr)
	if err != nil {
		return err
	}
	defer func() {
		if ln != nil {
			ln.Close()
		}
	}()
	log := slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	dir := filepath.Join(o.data, "lag-"+o.lagID)
	fresh := newFreshDir(o.data, dir)
	var (
		store      *authnet.Store
		evidence   *authnet.EvidenceLog
		authEvents *authnet.AuthEventLog
		srv        *authnet.LAGServer
		caAddr     string
	)
	// Started together with the CA (serve --role ca & serve --role lag &),
	// the LAG may come first: it waits, up to --ca-wait, for the CA's files
	// and then for the CA to answer its enrolment, and says once what it is
	// waiting for.
	wait := newCAWaiter(o, out)
	for {
		var pub auth.CAPublic
		var token [32]byte
		caAddr, pub, token, err = lagCAFiles(o)
		if err == nil {
			if store == nil {
				if store, err = authnet.OpenStore(dir); err != nil {
					return err
				}
				if evidence, err = authnet.OpenEvidenceLog(store); err != nil {
					return err
				}
				if evidence.Torn > 0 {
					log.Warn("evidence.jsonl ended with a torn line (a crash in mid-write): cut off before appending, kept in evidence.jsonl"+authnet.TornSuffix, "bytes", evidence.Torn)
				}
				defer evidence.Close()
				if authEvents, err = authnet.OpenAuthEventLog(store); err != nil {
					return undoLAG(fresh, evidence, err)
				}
				defer authEvents.Close()
			}
			if token == ([32]byte{}) && !authnet.LAGEnrolled(store) {
				err = fmt.Errorf("%w: %s does not exist yet (the operator issues it: gridveil ca issue lag %s --data %s; or give --credential)",
					errNoLAGCredential, lagCredentialFile(o), o.lagID, o.data)
				if werr := wait.next(err); werr != nil {
					return undoLAG(fresh, evidence, werr)
				}
				continue
			}
			ctx, cancel := context.WithTimeout(o.ctx, 30*time.Second)
			srv, err = authnet.OpenLAG(ctx, store, authnet.LAGOptions{ID: o.lagID, Group: o.group, CAAddr: caAddr, CA: pub, Token: token, Schemes: schemes},
				log, authEvents.Wrap("lag", keepEvidence(evidence, log, eventPrinter(out, "lag", o.quiet))))
			cancel()
			if err == nil {
				break
			}
			if !caNotUp(err) {
				return undoLAG(fresh, evidence, err)
			}
		}
		if werr := wait.next(err); werr != nil {
			return undoLAG(fresh, evidence, werr)
		}
	}
	if err := recordAddr(store, ln); err != nil {
		return err
	}
	fmt.Fprintf(out, "lag %s (group %s): listening on %s, CA at %s; stop with Ctrl-C\n", o.lagID, o.group, ln.Addr(), caAddr)
	l := ln
	ln = nil
	if o.lagReady != nil {
		o.lagReady(srv)
	}
	return srv.Serve(o.ctx, l)
}

// undoLAG takes back what a failed first start of a LAG wrote (its fresh
// keys; an evidence file with no session in it) and returns err.
func undoLAG(fresh *freshDir, evidence *authnet.EvidenceLog, err error) error {
	if evidence != nil {
		evidence.Close()
	}
	fresh.undo(append(authnet.LAGFiles, authnet.AuthEventsFile)...)
	return err
}

// lagCAFiles resolves the CA's files for a LAG. Until the CA has written
// its address (the last file of its start), a LAG that relies on the CA's
// data directory for it treats the CA as not up yet.
func lagCAFiles(o *serveOptions) (string, auth.CAPublic, [32]byte, error) {
	addrFile := filepath.Join(o.data, "ca", "addr")
	if o.caAddr == "" && o.caPublic == "" {
		if _, err := os.Stat(addrFile); err != nil {
			return "", auth.CAPublic{}, [32]byte{}, fmt.Errorf("%w: %s does not exist yet", errCANotUp, addrFile)
		}
	}
	addr, pub, token, haveToken, err := caFiles(o.data, o.caAddr, o.caPublic, o.tokenFile)
	if err != nil && errors.Is(err, fs.ErrNotExist) {
		err = fmt.Errorf("%w: %w", errCANotUp, err)
	}
	if err != nil {
		return addr, pub, token, err
	}
	// Its own credential first; the shared token only when there is one
	// (a CA in migration); else nothing, which a certified LAG needs.
	if cred, cerr := authnet.ReadToken(lagCredentialFile(o)); cerr == nil {
		return addr, pub, cred, nil
	} else if o.credential != "" && !errors.Is(cerr, fs.ErrNotExist) {
		return addr, pub, token, fmt.Errorf("--credential: %w", cerr)
	}
	if !haveToken {
		token = [32]byte{}
	}
	return addr, pub, token, nil
}

// lagCredentialFile is where a LAG's enrolment credential is read from.
func lagCredentialFile(o *serveOptions) string {
	if o.credential != "" {
		return o.credential
	}
	return filepath.Join(o.data, "credentials", authnet.CredentialFile(auth.CredentialLAG, o.lagID))
}

// errNoLAGCredential marks a LAG that must enrol but has no credential
// yet: waiting may cure it (the operator issues it once the CA is up).
var errNoLAGCredential = errors.New("this LAG is not enrolled and has no enrolment credential")

// errCANotUp marks what waiting may cure: the CA's files not written yet.
var errCANotUp = errors.New("the CA is not up yet")

// caNotUp reports whether err is what waiting for the CA may cure: its
// files are missing, or nothing answers at its address yet.
func caNotUp(err error) bool {
	if errors.Is(err, errCANotUp) || errors.Is(err, errNoLAGCredential) || errors.Is(err, syscall.ECONNREFUSED) {
		return true
	}
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

// caWaiter paces a LAG's wait for the CA: it says once what it waits for,
// retries every 200 ms, and gives up after --ca-wait with the last reason.
type caWaiter struct {
	o        *serveOptions
	out      io.Writer
	deadline time.Time
	said     bool
	saidCred bool
}

func newCAWaiter(o *serveOptions, out io.Writer) *caWaiter {
	return &caWaiter{o: o, out: out, deadline: time.Now().Add(o.caWait)}
}

func (w *caWaiter) next(why error) error {
	if !caNotUp(why) {
		return why
	}
	if !time.Now().Before(w.deadline) {
		if errors.Is(why, errNoLAGCredential) {
			return fmt.Errorf("gave up waiting %v: %w, or wait longer with --ca-wait", w.o.caWait, why)
		}
		return fmt.Errorf("gave up waiting %v for the CA: %w; start gridveil serve --role ca --data %s (or give --ca-addr and --ca-public), or wait longer with --ca-wait",
			w.o.caWait, why, w.o.data)
	}
	if !errors.Is(why, errNoLAGCredential) && !w.said {
		fmt.Fprintf(w.out, "lag %s: waiting up to %v for the CA (%v)\n", w.o.lagID, w.o.caWait, why)
		w.said = true
	}
	if errors.Is(why, errNoLAGCredential) && !w.saidCred {
		fmt.Fprintf(w.out, "lag %s: waiting up to %v for its enrolment credential (%v)\n", w.o.lagID, w.o.caWait, why)
		w.saidCred = true
	}
	select {
	case <-w.o.ctx.Done():
		return fmt.Errorf("stopped while waiting: %w", why)
	case <-time.After(200 * time.Millisecond):
	}
	return nil
}
