package main

import (
	"context"
	"fmt"
	"io"
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

	"github.com/gridveil/gridveil/auth"
	"github.com/gridveil/gridveil/auth/authnet"
	"github.com/gridveil/gridveil/ocpp"
)

func newAgentCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "agent",
		Short: "Run simulated field devices against the services (vehicles)",
	}
	cmd.AddCommand(newAgentBVCmd())
	return cmd
}

type agentBVOptions struct {
	count      int
	prefix     string
	data       string
	caAddr     string
	caPublic   string
	tokenFile  string
	creds      string
	lag        string
	lagID      string
	group      string
	role       string
	schemes    string
	ring       int
	minRing    int
	resume     bool
	decline    int
	pseudonyms int
	energyWh   int
	parallel   int
	timeout    time.Duration
	hold       time.Duration
}

func newAgentBVCmd() *cobra.Command {
	o := &agentBVOptions{}
	cmd := &cobra.Command{
		Use:   "bv",
		Short: "Run battery vehicles through anonymous authentication and a charge, full, discharge, charge cycle",
		Long: `bv runs --count vehicles at once. Each one enrols with the CA (the first
time, or when it runs low on pseudonyms), plugs in at the LAG, authenticates
anonymously over a Noise session, and goes through seed 002's battery
states: charging, fully charged (a status sealed to the CA), discharging
(the CA's request answered Agree or Decline, sealed to the CA), charging
again (a sealed status). It prints what each vehicle learned; the CA and the
LAG print what they learned in their own output.

A new vehicle enrols with its own enrolment credential, which the operator
issued for its name (gridveil ca issue vehicle --count N writes them to
--data/credentials); the CA binds the name to the vehicle's keys at that
first enrolment, and later refills need no credential.

Vehicles keep their keys, pseudonyms and tickets in --data/bv, so a second
run resumes at the home LAG with a ticket (--resume). A vehicle that holds
credentials goes to the LAG even when the CA does not renew them (it says
so): after gridveil ca revoke, the revoked vehicle is refused by the LAG
and the others resume. New vehicles need the CA running: without it the
command fails and writes nothing.

Each vehicle prints its session's OCPP idToken (type Central, 32 hex
digits): the token a charging station of this LAG (gridveil serve --role
lag --ocpp) accepts while that session lasts, derived from the session's
secret operation key (docs/OCPP.md). A session normally ends with the
cycle; --hold D keeps it open D longer (or until Ctrl-C), printing the
token when the hold begins, so that it can be handed to a station.`,
		Example: `  gridveil agent bv --count 5
  gridveil agent bv --count 3 --scheme lsag --ring 8
  gridveil agent bv --count 4 --decline 2 --role supply
  gridveil agent bv --count 1 --hold 10m   # show a station the printed idToken meanwhile`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			if ctx == nil {
				ctx = context.Background()
			}
			// A held session ends at Ctrl-C with a goodbye to the LAG, not
			// with the connection cut.
			ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
			defer stop()
			return runAgentBV(ctx, cmd.OutOrStdout(), o)
		},
	}
	fl := cmd.Flags()
	fl.IntVar(&o.count, "count", 3, "vehicles")
	fl.StringVar(&o.prefix, "prefix", "BV", "vehicles are named PREFIX-001, PREFIX-002, ... (their real identities)")
	fl.StringVar(&o.data, "data", "gridveil-data", "data directory root (vehicles in --data/bv)")
	fl.StringVar(&o.caAddr, "ca-addr", "", "the CA's address (default: --data/ca/addr if present, else "+defaultCAAddr+")")
	fl.StringVar(&o.caPublic, "ca-public", "", "the CA's public.key (default --data/ca/public.key)")
	fl.StringVar(&o.creds, "credentials", "", "folder of the vehicles' enrolment credentials, vehicle-NAME.cred, written by gridveil ca issue vehicle (default --data/credentials)")
	fl.StringVar(&o.tokenFile, "token-file", "", "the shared enrol.token of a CA started with --shared-token (a migration; default --data/ca/enrol.token if present)")
	fl.StringVar(&o.lag, "lag", "", "the LAG's address (default: --data/lag-<lag-id>/addr if present, else "+defaultLAGAddr+")")
	fl.StringVar(&o.lagID, "lag-id", "lag-1", "the LAG the vehicles expect (refused if another one answers)")
	fl.StringVar(&o.group, "group", "utility-a", "the vehicles' utility (group attribute); the LAG's group is their home")
	fl.StringVar(&o.role, "role", "storage", "load, storage or supply (load vehicles skip discharging)")
	fl.StringVar(&o.schemes, "scheme", "pseudonym,lsag", "credential schemes the vehicles accept, in order of preference")
	fl.IntVar(&o.ring, "ring", 16, "LSAG ring size")
	fl.IntVar(&o.minRing, "min-ring", 2, "smallest LSAG ring a vehicle signs with (else it uses another scheme or fails)")
	fl.BoolVar(&o.resume, "resume", true, "resume with a ticket at the home LAG when holding one")
	fl.IntVar(&o.decline, "decline", 0, "the first N vehicles decline discharge requests")
	fl.IntVar(&o.pseudonyms, "pseudonyms", 10, "pseudonyms fetched per enrolment (and refill when fewer than 2 valid now remain)")
	fl.IntVar(&o.energyWh, "energy", 30000, "energy each vehicle charged before it is full, Wh")
	fl.IntVar(&o.parallel, "parallel", 32, "vehicles running at the same time")
	fl.DurationVar(&o.timeout, "timeout", 20*time.Second, "bound on each step")
	fl.DurationVar(&o.hold, "hold", 0, "keep each session open this long after its cycle (or until Ctrl-C), so a station can be shown its OCPP idToken")
	return cmd
}

func runAgentBV(ctx context.Context, out io.Writer, o *agentBVOptions) error {
	if ctx == nil {
		ctx = context.Background()
	}
	if o.count < 1 || o.count > 100000 {
		return fmt.Errorf("--count %d: 1..100000", o.count)
	}
	if o.hold < 0 {
		return fmt.Errorf("--hold %v: give a duration of 0 (end each session with its cycle) or more", o.hold)
	}
	// With --hold the tokens are printed as the vehicles' holds begin,
	// from their goroutines.
	var outMu sync.Mutex
	role, err := auth.ParseRole(o.role)
	if err != nil {
		return err
	}
	schemes, err := parseSchemes(o.schemes)
	if err != nil {
		return fmt.Errorf("--scheme: %w", err)
	}
	caAddr, pub, token, haveToken, err := caFiles(o.data, o.caAddr, o.caPublic, o.tokenFile)
	if err != nil {
		return err
	}
	lagAddr := o.lag
	if lagAddr == "" {
		lagAddr = defaultLAGAddr
		if b, err := os.ReadFile(filepath.Join(o.data, "lag-"+o.lagID, "addr")); err == nil {
			lagAddr = strings.TrimSpace(string(b))
		}
	}
	bvDir := filepath.Join(o.data, "bv")
	names := make([]string, o.count)
	needCA := false
	for i := range names {
		names[i] = fmt.Sprintf("%s-%03d", o.prefix, i+1)
		if _, err := os.Stat(filepath.Join(bvDir, names[i]+".json")); err != nil {
			needCA = true
		}
	}
	// A new vehicle must enrol before anything else: with no CA to enrol
	// with, say so before its keys and folder are created for nothing.
	if needCA {
		if err := probeCA(ctx, caAddr, o.data); err != nil {
			return err
		}
	}
	store, err := authnet.OpenStore(bvDir)
	if err != nil {
		return err
	}
	start := time.Now()
	reports := make([]string, o.count)
	errs := make([]error, o.count)
	sem := make(chan struct{}, max(1, o.parallel))
	var wg sync.WaitGroup
	// LSAG rings are drawn from the group's members: enrol everyone first,
	// then refresh each vehicle's copy of the group list.
	vehicles := make([]*authnet.Vehicle, o.count)
	enrolled := make([]bool, o.count) // held credentials before this run
	for i := range vehicles {
		if vehicles[i], err = authnet.OpenVehicle(store, names[i], o.group, pub); err != nil {
			return err
		}
		enrolled[i] = vehicles[i].BV.GroupSize() > 0 || vehicles[i].BV.Pseudonyms() > 0
		vehicles[i].RefreshFrom = caAddr // an outdated group list is refreshed and the session retried
	}
	credDir := o.creds
	if credDir == "" {
		credDir = filepath.Join(o.data, "credentials")
	}
	// admission is what a vehicle enrols with: nothing once enrolled (its
	// identity key is bound), else its credential, else the shared token of
	// a CA in migration.
	admission := func(v *authnet.Vehicle) ([32]byte, error) {
		if v.BV.Enrolled() {
			return [32]byte{}, nil
		}
		file := filepath.Join(credDir, authnet.CredentialFile(auth.CredentialVehicle, v.BV.RealID))
		if _, err := os.Stat(file); err == nil {
			return authnet.ReadToken(file)
		}
		if haveToken {
			return token, nil
		}
		return [32]byte{}, fmt.Errorf("%s has no enrolment credential (%s): the operator issues it with gridveil ca issue vehicle %s --data %s (or --count N for PREFIX-001..)",
			v.BV.RealID, file, v.BV.RealID, o.data)
	}
	// notes[i] is why a vehicle that already held credentials goes to the
	// LAG without the refill or group-list refresh it asked the CA for: a
	// vehicle does not need the CA's consent to try, and the LAG's verdict
	// is the one that counts (a revoked vehicle is refused there, by the
	// LAG itself).
	notes := make([]string, o.count)
	enrol := func(v *authnet.Vehicle, n int) error {
		cred, err := admission(v)
		if err != nil {
			return err
		}
		c, cancel := context.WithTimeout(ctx, o.timeout)
		defer cancel()
		return v.Enrol(c, caAddr, cred, n)
	}
	for pass := 0; pass < 2; pass++ {
		for i, v := range vehicles {
			n := 0
			if pass == 0 && v.BV.UsablePseudonyms(time.Now()) < 2 {
				n = o.pseudonyms
			}
			if pass == 0 && n == 0 {
				continue
			}
			if pass == 1 && !slices.Contains(schemes, auth.SchemeLSAG) {
				continue
			}
			wg.Add(1)
			sem <- struct{}{}
			go func() {
				defer func() { <-sem; wg.Done() }()
				err := enrol(v, n)
				switch {
				case err == nil || errs[i] != nil || notes[i] != "":
				case enrolled[i]:
					notes[i] = fmt.Sprintf("%s  the CA did not renew its credentials (%v); it tries the LAG with what it holds\n", v.BV.RealID, err)
				default:
					errs[i] = err
				}
			}()
		}
		wg.Wait()
	}
	for i, v := range vehicles {
		if errs[i] != nil {
			continue
		}
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			rep, err := v.RunCycle(ctx, lagAddr, authnet.CycleOptions{
				Session: auth.SessionOptions{Role: role, Schemes: schemes, RingSize: o.ring, MinRingSize: o.minRing, Resume: o.resume,
					WillDischarge: i >= o.decline, ExpectLAG: o.lagID},
				EnergyWh: int32(o.energyWh),
				Wait:     o.timeout,
				Hold:     o.hold,
				Held: func(tok auth.StationToken) {
					outMu.Lock()
					fmt.Fprintf(out, "%s  cycle done, %s; session held for %v (Ctrl-C ends it)\n", v.BV.RealID, tokenLine(o.lagID, tok), o.hold)
					outMu.Unlock()
				},
			})
			if err != nil {
				errs[i] = fmt.Errorf("%s: %w", v.BV.RealID, err)
				return
			}
			reports[i] = describeCycle(rep)
		}()
	}
	wg.Wait()
	outMu.Lock()
	defer outMu.Unlock()
	failed := 0
	for i := range reports {
		fmt.Fprint(out, notes[i])
		if errs[i] != nil {
			failed++
			fmt.Fprintf(out, "%s-%03d  FAILED: %v\n", o.prefix, i+1, errs[i])
			continue
		}
		fmt.Fprint(out, reports[i])
	}
	fmt.Fprintf(out, "%d of %d vehicles completed the cycle in %.2f s\n", o.count-failed, o.count, time.Since(start).Seconds())
	if failed > 0 {
		return &exitError{code: 2, err: fmt.Errorf("%d vehicles failed", failed)}
	}
	return nil
}

func describeCycle(r *authnet.CycleReport) string {
	var b strings.Builder
	v := r.View
	net := "visiting network, basic service"
	if v.Home {
		net = "home network, full service"
	}
	how := v.Scheme.String()
	if v.Resumed {
		how += ", resumed with a ticket"
	}
	states := make([]string, len(r.States))
	for i, s := range r.States {
		states[i] = s.String()
	}
	fmt.Fprintf(&b, "%s  at %s (%s; %s): %s\n", r.RealID, v.LAGID, net, how, strings.Join(states, " -> "))
	fmt.Fprintf(&b, "    learned: confirmed in a batch of %d by one LAG signature; %d discharge request(s)", v.BatchSize, v.Requests)
	for _, a := range v.Acks {
		fmt.Fprintf(&b, "; %s", a)
	}
	fmt.Fprintf(&b, "; real status from the CA: SOC %.1f%%, billed %d Wh\n", float64(v.SOCPermille)/10, v.BilledWh)
	fmt.Fprintf(&b, "    %s, valid while the session lasted\n", tokenLine(v.LAGID, r.StationToken))
	return b.String()
}

// tokenLine names a session's OCPP idToken (ocpp.SessionToken: 32
// lower-case hex digits, type Central) for the operator to hand a station.
func tokenLine(lagID string, tok auth.StationToken) string {
	id := ocpp.SessionToken(tok)
	return fmt.Sprintf("OCPP idToken at %s: %s (type %s)", lagID, id.IDToken, id.Type)
}

// probeCA checks that something accepts connections at the CA's address,
// so that a run with no CA fails at once, says what to do, and writes
// nothing.
func probeCA(ctx context.Context, addr, data string) error {
	c, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(c, "tcp", addr)
	if err != nil {
		return fmt.Errorf("new vehicles must enrol, but the CA at %s does not answer (%w): start gridveil serve --role ca --data %s first, or give --ca-addr; nothing was written", addr, err, data)
	}
	return conn.Close()
}
