package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/gridveil/gridveil/aggregate"
	"github.com/gridveil/gridveil/dashboard"
	"github.com/gridveil/gridveil/day"
	"github.com/gridveil/gridveil/rundir"
	"github.com/gridveil/gridveil/runfile"
	"github.com/gridveil/gridveil/scenario"
	"github.com/gridveil/gridveil/transport"
)

type upFlags struct {
	scenario string
	seed     uint64
	evs      int
	hosts    int
	maxIter  int
	out      string
	data     string
	nats     string
	pace     time.Duration
	resend   time.Duration
	drop     int
	quiet    bool
	force    bool
	dash     string
	token    string
	privacy  string
	maskThr  int
	maskSgl  bool
}

func newUpCmd() *cobra.Command {
	var f upFlags
	cmd := &cobra.Command{
		Use:   "up",
		Short: "Run one day with every party as its own process over NATS",
		Long: `up runs a day of the platform with every party as its own OS process
(gridveil serve --role ...): the NATS server (unless --nats names one), the
system operator and --hosts EV host processes that share the vehicles.
The vehicles and the SO coordinate over NATS, each vehicle holding only its
own local set; the SO saves its state after every round, and a crashed SO
is started again and resumes. When the day ends, up writes into --out the
same files as gridveil sim (instance.json, solution.json from the vehicles'
own schedules, convergence.json from the SO's progress messages,
report.html, run.json) plus so.json (the SO's own view) and events.log
(every line every party printed). Ctrl-C stops every party.

With --privacy masking the vehicles send masked reports and the SO
recovers only each bus's sum (secure aggregation with pairwise masks,
seed shares and dropout recovery over NATS; docs/PLATFORM.md).

For the same scenario and seed, up and sim give the same aggregate load
within 1e-6 kW (up --privacy masking and sim --privacy masking alike).
What up does not run yet (metering, homes, authentication, market,
discharging as parties, the other privacy mechanisms): docs/PLATFORM.md.`,
		Example: `  gridveil up
  gridveil up --privacy masking
  gridveil up --scenario ieee13-stressed --hosts 3 --out out/up
  gridveil up --nats nats://10.0.0.5:4222,nats://10.0.0.6:4222`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runUp(cmd, &f) },
	}
	fl := cmd.Flags()
	fl.StringVar(&f.scenario, "scenario", "ieee13-paper", "built-in scenario name, scenario YAML file, or instance.json")
	fl.Uint64Var(&f.seed, "seed", 0, "random seed for the scenario's draws (default: the scenario's own seed)")
	fl.IntVar(&f.evs, "evs", 0, "number of EVs (default: the scenario's)")
	fl.IntVar(&f.hosts, "hosts", 2, "EV host processes")
	fl.IntVar(&f.maxIter, "max-iter", 5000, "iteration limit")
	fl.StringVar(&f.out, "out", "out/up", "directory for the output files")
	fl.StringVar(&f.data, "data", "", "the parties' data directory (default: OUT/parties)")
	fl.StringVar(&f.nats, "nats", "", "use this NATS server or cluster (nats://host:port[,...]) instead of starting one")
	fl.DurationVar(&f.pace, "pace", 0, "least time between coordination rounds (0: as fast as the reports come)")
	fl.DurationVar(&f.resend, "resend", 500*time.Millisecond, "the SO re-sends a round that made no progress for this long")
	fl.IntVar(&f.drop, "drop-after", 10, "the SO drops vehicles still silent after this many re-sends in a row (their processes are gone)")
	fl.BoolVarP(&f.quiet, "quiet", "q", false, "print nothing but errors")
	fl.StringVar(&f.dash, "dashboard", "", "serve the live dashboard on this address (e.g. 127.0.0.1:8080) during the day, and the finished run after it until Ctrl-C")
	fl.StringVar(&f.token, "dashboard-token", "", "the dashboard's access token, required beyond loopback (default: $GRIDVEIL_DASHBOARD_TOKEN)")
	fl.StringVar(&f.privacy, "privacy", "none", "privacy mechanism between the vehicles and the SO: none or masking (secure aggregation: the SO learns only per-bus sums)")
	fl.IntVar(&f.maskThr, "mask-threshold", 0, "masking: vehicles needed to unmask a bus (0: a majority)")
	fl.BoolVar(&f.maskSgl, "mask-single", false, "masking: no self-masks (safe only against a protocol-following SO on a punctual network)")
	fl.BoolVar(&f.force, "force", false, "write into --out even if it holds files gridveil did not write (they are kept)")
	return cmd
}

func runUp(cmd *cobra.Command, f *upFlags) error {
	stdout := cmd.OutOrStdout()
	if f.quiet {
		stdout = io.Discard
	}
	if f.hosts <= 0 {
		return fmt.Errorf("--hosts %d: give at least one EV host process", f.hosts)
	}
	if f.resend <= 0 || f.drop < 0 {
		return fmt.Errorf("--resend %s, --drop-after %d: give a positive resend interval and a drop count >= 0", f.resend, f.drop)
	}
	if f.maxIter <= 0 {
		return fmt.Errorf("--max-iter %d: give a positive iteration limit", f.maxIter)
	}
	if f.privacy != "none" && f.privacy != "masking" {
		return fmt.Errorf("--privacy %s: gridveil up runs none or masking (the other mechanisms run in gridveil sim only)", f.privacy)
	}
	// Every party builds the same plan; building it here first refuses a
	// bad scenario before any process starts.
	pl, err := day.Load(f.scenario, f.seed, cmd.Flags().Changed("seed"), f.evs)
	if err != nil {
		return err
	}
	if f.hosts > len(pl.Problem.EVs) {
		return fmt.Errorf("--hosts %d: the day has only %d vehicles", f.hosts, len(pl.Problem.EVs))
	}
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("finding the gridveil binary to start the parties: %w", err)
	}
	data := f.data
	if data == "" {
		data = filepath.Join(f.out, "parties")
	}
	parent := cmd.Context()
	if parent == nil {
		parent = context.Background()
	}
	ctx, stop := signal.NotifyContext(parent, os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := rundir.Check(f.out, f.force); err != nil {
		return err
	}
	var dash *upDashboard
	if f.dash != "" {
		if dash, err = startUpDashboard(ctx, f.dash, f.token, stdout, cmd.ErrOrStderr()); err != nil {
			return err
		}
		defer dash.close()
	}
	conv := newUpConvergence(dash)
	defer conv.close()
	var eventLines bytes.Buffer
	fmt.Fprintf(stdout, "gridveil up: %s, seed %d: %d vehicles in %d EV host processes, SO, %s\n", pl.Meta.Scenario, pl.Meta.Seed, len(pl.Problem.EVs), f.hosts,
		map[bool]string{true: "NATS at " + f.nats, false: "embedded NATS server"}[f.nats != ""])
	t0 := time.Now()
	res, err := day.Up(ctx, day.UpConfig{Exe: exe, Data: data, Scenario: f.scenario, Seed: f.seed, SeedSet: cmd.Flags().Changed("seed"), EVs: f.evs,
		MaxIter: f.maxIter, Hosts: f.hosts, NATS: f.nats, Pace: f.pace, Resend: f.resend, DropAfter: f.drop, Privacy: f.privacy, MaskThreshold: f.maskThr, MaskSingle: f.maskSgl, OnBus: conv.onBus, Events: &eventLines, Progress: stdout})
	elapsed := time.Since(t0)
	// The events log is written whatever happened: it is what explains a
	// failed day.
	events := func(w io.Writer) error { _, err := w.Write(eventLines.Bytes()); return err }
	if err != nil {
		if _, werr := writeRun(cmd, f.out, map[string]func(io.Writer) error{"events.log": events}); werr != nil {
			return fmt.Errorf("the day did not complete: %w (and its events.log could not be written: %v)", err, werr)
		}
		return fmt.Errorf("the day did not complete: %w (every party's output: %s)", err, filepath.Join(f.out, "events.log"))
	}
	sol, g, err := day.Assemble(pl, res.SO, res.Hosts)
	if err != nil {
		return err
	}
	p, meta := pl.Problem, pl.Meta
	// The SO's sums were exact (masking's to 2^-32 kW per vehicle) and its
	// baselines true, so its view is the grid's: no so_view (as in sim
	// with --privacy none or masking).
	r, err := runfile.NewOutcome(p, p, sol, aggregate.NewNone(p, false), false)
	if err != nil {
		return err
	}
	r.Grid = g
	files := map[string]func(io.Writer) error{
		"instance.json": func(w io.Writer) error { return scenario.WriteJSON(w, scenario.NewInstance(p, meta)) },
		"solution.json": func(w io.Writer) error {
			return scenario.WriteJSON(w, scenario.NewSolution(p, meta, sol, g, f.privacy, true))
		},
		"so.json":          func(w io.Writer) error { return scenario.WriteJSON(w, res.SO) },
		"convergence.json": conv.file(meta, sol),
		"events.log":       events,
		"report.html":      func(w io.Writer) error { return runfile.WriteChargingReport(w, p, meta, r, &runfile.ReportExtras{}) },
		"run.json": func(w io.Writer) error {
			return scenario.WriteJSON(w, map[string]any{
				"schema": "gridveil/run/v1", "command": "up", "day_seconds": elapsed.Seconds(), "hosts": f.hosts,
				"restarts": res.Restarts, "hosts_lost": res.Lost, "vehicles_dropped": len(res.SO.Dropped), "rounds": res.SO.Rounds, "rounds_resent": res.SO.Resent, "refused": res.SO.Refused,
				"flags": runFlags(cmd.Flags()), "gomaxprocs": runtime.GOMAXPROCS(0), "go": runtime.Version(), "goos": runtime.GOOS, "goarch": runtime.GOARCH,
			})
		},
	}
	written, err := writeRun(cmd, f.out, files)
	if err != nil {
		return err
	}
	runfile.PrintSummary(stdout, "up", p, meta, r, elapsed)
	runfile.PrintFiles(stdout, written)
	kept := "their last schedules kept as load"
	if f.privacy == "masking" {
		kept = "their charge points stopped: masking never showed the SO their schedules"
	}
	fmt.Fprintf(stdout, "  platform     %d rounds over NATS with privacy %s, %d re-sent, SO restarts %d, EV hosts lost %d (%d vehicles dropped, %s), refused %v; parties' files in %s\n",
		res.SO.Rounds, f.privacy, res.SO.Resent, res.Restarts["so"], len(res.Lost), len(res.SO.Dropped), kept, res.SO.Refused, data)
	if dash != nil {
		// The day is over: the page shows its files beside the live
		// history until the user stops it.
		if err := dash.showRun(f.out); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "  dashboard    %s shows the finished day; stop with Ctrl-C\n", dash.url)
		<-ctx.Done()
	}
	if !sol.Converged {
		return &exitError{code: 3, err: fmt.Errorf("did not converge in %d iterations; the files in %s say converged: false", sol.Iterations, f.out)}
	}
	return nil
}

// upDashboard is the dashboard gridveil up serves: live from the bus
// during the day, then with the day's files.
type upDashboard struct {
	url     string
	live    *dashboard.Live
	token   string
	log     *slog.Logger
	handler atomic.Pointer[http.Handler]
	hs      *http.Server
	conn    *transport.Conn
	unsub   func() error
}

func startUpDashboard(ctx context.Context, addr, token string, stdout, stderr io.Writer) (*upDashboard, error) {
	if token == "" {
		token = os.Getenv("GRIDVEIL_DASHBOARD_TOKEN")
	}
	if err := dashboard.CheckListen(addr, token); err != nil {
		return nil, err
	}
	d := &upDashboard{token: token, log: slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))}
	d.live = dashboard.NewLive(d.log)
	empty, err := dashboard.OpenRun("")
	if err != nil {
		return nil, err
	}
	if err := d.serve(empty); err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("the dashboard cannot listen on %s: %w; choose another --dashboard address", addr, err)
	}
	d.url = "http://" + ln.Addr().String() + "/"
	d.hs = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { (*d.handler.Load()).ServeHTTP(w, r) }),
		ReadHeaderTimeout: 10 * time.Second, BaseContext: func(net.Listener) context.Context { return ctx }}
	go func() {
		if err := d.hs.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			d.log.Error("dashboard", "err", err)
		}
	}()
	fmt.Fprintf(stdout, "  dashboard    %s follows the day live\n", d.url)
	return d, nil
}

// serve switches the page to a run's files (the live state stays).
func (d *upDashboard) serve(run *dashboard.Run) error {
	srv, err := dashboard.New(dashboard.Config{Run: run, Live: d.live, Token: d.token, Log: d.log})
	if err != nil {
		return err
	}
	var h http.Handler = srv
	d.handler.Store(&h)
	return nil
}

// follow subscribes the live view to the SO's progress on the day's bus.
func (d *upDashboard) follow(url string) error {
	if d == nil {
		return nil
	}
	conn, err := transport.Connect(url, "dashboard", 10*time.Second, d.log)
	if err != nil {
		return err
	}
	unsub, err := d.live.Follow(conn)
	if err != nil {
		conn.Close()
		return err
	}
	d.conn, d.unsub = conn, unsub
	return nil
}

func (d *upDashboard) showRun(dir string) error {
	run, err := dashboard.OpenRun(dir)
	if err != nil {
		return err
	}
	return d.serve(run)
}

func (d *upDashboard) close() {
	if d.unsub != nil {
		_ = d.unsub()
	}
	if d.conn != nil {
		d.conn.Close()
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = d.hs.Shutdown(sctx)
}
