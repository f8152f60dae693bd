package main

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/gridveil/gridveil/charging"
	"github.com/gridveil/gridveil/day"
	"github.com/gridveil/gridveil/durable"
	"github.com/gridveil/gridveil/service"
	"github.com/gridveil/gridveil/transport"
)

// platformFlags are gridveil serve's flags for the platform roles (nats,
// so, ev): the day's plan, which every party derives alike, and the bus.
type platformFlags struct {
	nats      string
	scenario  string
	seed      uint64
	evs       int
	host      int
	hosts     int
	maxIter   int
	resend    time.Duration
	pace      time.Duration
	cluster   string
	clAddr    string
	routes    string
	metrics   string
	soPublic  string
	dropAfter int
	privacy   string
	maskThr   int
	maskSgl   bool
}

var platformServeFlags platformFlags

// defaultNATSAddr is the embedded NATS server's client address.
const defaultNATSAddr = "127.0.0.1:4222"

// faultKillSO, set to an iteration number, makes the SO role kill itself
// with SIGKILL right after it has saved that iteration's state: a fault
// injection point for the crash tests of docs/PLATFORM.md, so the crash
// lands at a chosen place, not wherever a timer happens to fire.
const faultKillSO = "GRIDVEIL_FAULT_SO_SIGKILL_AT_ITERATION"

// faultKillEV, set to HOST:ROUND, makes EV host HOST kill itself with
// SIGKILL when the broadcast of round ROUND arrives, before its vehicles
// answer: the vehicle-process crash of docs/PLATFORM.md.
const faultKillEV = "GRIDVEIL_FAULT_EV_SIGKILL_AT_ROUND"

func init() {
	serveRoles["nats"] = serveNATS
	serveRoles["so"] = serveSO
	serveRoles["ev"] = serveEV
	serveFlagHooks = append(serveFlagHooks, func(fs *pflag.FlagSet) {
		f := &platformServeFlags
		fs.StringVar(&f.nats, "nats", "", "so, ev: NATS server or cluster, nats://host:port[,...] (default: --data/nats/addr if present, else nats://"+defaultNATSAddr+")")
		fs.StringVar(&f.scenario, "scenario", "ieee13-paper", "so, ev: the day's scenario (every party must be given the same)")
		fs.Uint64Var(&f.seed, "seed", 0, "so, ev: the scenario's seed (default: the scenario's own)")
		fs.IntVar(&f.evs, "evs", 0, "so, ev: number of EVs (default: the scenario's)")
		fs.IntVar(&f.host, "host", 0, "ev: which host this process is, 0..--hosts-1")
		fs.IntVar(&f.hosts, "hosts", 1, "ev: how many EV host processes share the vehicles")
		fs.IntVar(&f.maxIter, "max-iter", 5000, "so: iteration limit")
		fs.DurationVar(&f.resend, "resend", 500*time.Millisecond, "so: re-send a round that made no progress for this long")
		fs.StringVar(&f.soPublic, "so-public", "", "ev: the SO's public key, which its broadcasts are signed with (default --data/so/public.key, waited for up to 30 s)")
		fs.IntVar(&f.dropAfter, "drop-after", 10, "so: drop vehicles still silent after this many re-sends of a round in a row (their last schedules stay as fixed loads; 0: wait for ever)")
		fs.DurationVar(&f.pace, "pace", 0, "so: least time between rounds (0: as fast as the reports come)")
		fs.StringVar(&f.privacy, "privacy", "none", "so, ev: privacy mechanism between the vehicles and the SO: none or masking (every party must be given the same)")
		fs.IntVar(&f.maskThr, "mask-threshold", 0, "so: masking: vehicles needed to unmask a bus (0: a majority)")
		fs.BoolVar(&f.maskSgl, "mask-single", false, "so: masking without self-masks (safe only against a protocol-following SO on a punctual network)")
		fs.StringVar(&f.cluster, "cluster", "", "nats: join a NATS cluster of this name")
		fs.StringVar(&f.clAddr, "cluster-addr", "127.0.0.1:0", "nats: this node's route address in the cluster")
		fs.StringVar(&f.routes, "routes", "", "nats: other nodes' route URLs, nats://host:port,...")
		fs.StringVar(&f.metrics, "metrics", "127.0.0.1:0", "so, ev: Prometheus /metrics address (the bound address goes to --data/ROLE/metrics; empty: none)")
	})
}

// natsURL resolves the bus address: the flag, else the address the nats
// role recorded under the same --data, else the default.
func natsURL(data, flag string) string {
	if flag != "" {
		return flag
	}
	if b, err := os.ReadFile(filepath.Join(data, "nats", "addr")); err == nil {
		return strings.TrimSpace(string(b))
	}
	return "nats://" + defaultNATSAddr
}

func roleLog(cmd *cobra.Command, role string) *slog.Logger {
	return slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), &slog.HandlerOptions{Level: slog.LevelInfo})).With("role", role)
}

func (f *platformFlags) plan(cmd *cobra.Command) (*day.Plan, error) {
	if f.privacy != "none" && f.privacy != "masking" {
		return nil, fmt.Errorf("--privacy %s: the parties run none or masking (the other mechanisms run in gridveil sim only)", f.privacy)
	}
	return day.Load(f.scenario, f.seed, cmd.Flags().Changed("seed"), f.evs)
}

// masking is the SO's masking configuration, or nil for none.
func (f *platformFlags) masking() *service.MaskingConfig {
	if f.privacy != "masking" {
		return nil
	}
	return &service.MaskingConfig{Threshold: f.maskThr, SingleMask: f.maskSgl}
}

// serveNATS runs the embedded NATS server (one node, or one of a cluster).
func serveNATS(cmd *cobra.Command, o *serveOptions) error {
	f := platformServeFlags
	addr := o.addr
	if addr == "" {
		addr = defaultNATSAddr
	}
	host, portStr, err := splitHostPort(addr)
	if err != nil {
		return fmt.Errorf("--addr %q: %w", addr, err)
	}
	port, _ := strconv.Atoi(portStr)
	cfg := transport.ServerConfig{Host: host, Port: port, Log: roleLog(cmd, "nats")}
	if f.cluster != "" {
		ch, cp, err := splitHostPort(f.clAddr)
		if err != nil {
			return fmt.Errorf("--cluster-addr %q: %w", f.clAddr, err)
		}
		if ch != host {
			return fmt.Errorf("--cluster-addr %q must be on the same host as --addr %q", f.clAddr, addr)
		}
		cfg.Cluster, cfg.ClusterPort = f.cluster, atoiOr(cp, 0)
		cfg.Name = "gridveil-" + portStr
		if f.routes != "" {
			cfg.Routes = strings.Split(f.routes, ",")
		}
	}
	srv, err := transport.StartServer(cfg)
	if err != nil {
		return err
	}
	defer srv.Shutdown()
	dir := filepath.Join(o.data, "nats")
	if err := day.WriteText(filepath.Join(dir, "addr"), srv.ClientURL()+"\n"); err != nil {
		return err
	}
	if u := srv.ClusterURL(); u != "" {
		if err := day.WriteText(filepath.Join(dir, "route"), u+"\n"); err != nil {
			return err
		}
	}
	fmt.Fprintf(cmd.OutOrStdout(), "nats: listening on %s%s; stop with Ctrl-C\n", srv.ClientURL(), map[bool]string{true: ", routes on " + srv.ClusterURL(), false: ""}[srv.ClusterURL() != ""])
	<-o.ctx.Done()
	return nil
}

func splitHostPort(a string) (string, string, error) {
	i := strings.LastIndex(a, ":")
	if i < 0 {
		return "", "", errors.New("give host:port")
	}
	if _, err := strconv.Atoi(a[i+1:]); err != nil {
		return "", "", errors.New("the port is not a number")
	}
	return a[:i], a[i+1:], nil
}

func atoiOr(s string, def int) int {
	if v, err := strconv.Atoi(s); err == nil {
		return v
	}
	return def
}

// serveSO runs the system operator's coordination for one day, saving
// its state in --data/so/state after every round, and writes
// --data/so/so.json at the end.
func serveSO(cmd *cobra.Command, o *serveOptions) error {
	f := platformServeFlags
	pl, err := f.plan(cmd)
	if err != nil {
		return err
	}
	log := roleLog(cmd, "so")
	dir := filepath.Join(o.data, "so")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	url := natsURL(o.data, f.nats)
	conn, err := transport.Connect(url, "so", 30*time.Second, log)
	if err != nil {
		return err
	}
	defer conn.Close()
	met, err := startMetrics(o, "so", dir, conn, log)
	if err != nil {
		return err
	}
	key, err := soKey(dir)
	if err != nil {
		return err
	}
	cfg, members := pl.SO(charging.Options{MaxIter: f.maxIter})
	killAt := -1
	if v := os.Getenv(faultKillSO); v != "" {
		killAt = atoiOr(v, -1)
	}
	out := cmd.OutOrStdout()
	fmt.Fprintf(out, "so: %s, seed %d: %d vehicles on %d buses, coordinating over %s with privacy %s\n", pl.Meta.Scenario, pl.Meta.Seed, len(pl.Problem.EVs), len(cfg.Buses), url, f.privacy)
	res, err := service.RunSO(o.ctx, service.SOConfig{Key: key, Operator: cfg, Members: members, Conn: conn, StateFile: filepath.Join(dir, "state"),
		Resend: f.resend, Pace: f.pace, Log: log, Metrics: met, DropAfter: f.dropAfter, Masking: f.masking(),
		Progress: func(st charging.Stats) {
			if st.Iter%10 == 0 || !isNaN(st.Gap) {
				fmt.Fprintf(out, "so: iteration %d objective %.6g change %.3g kW violation %.3g pu gap %.3g\n", st.Iter, st.Objective, st.Change, st.Violation, st.Gap)
			}
			if st.Iter == killAt {
				_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
			}
		}})
	if err != nil {
		if o.ctx.Err() != nil && res != nil {
			// Stopped by a signal: the state file holds the last round.
			fmt.Fprintf(out, "so: stopped at round %d (iteration %d); the same command resumes from %s\n", res.Coordinator.Round(), res.Coordinator.Operator().Iteration(), filepath.Join(dir, "state"))
			return nil
		}
		return err
	}
	sr := day.NewSOResult(pl, res.Coordinator, res.Resumed, res.Resent, res.Refused)
	if err := day.WriteJSONFile(filepath.Join(dir, "so.json"), sr); err != nil {
		return err
	}
	fmt.Fprintf(out, "so: done after %d iterations (converged %v, %d rounds re-sent, %d vehicles dropped, refused %v); %d messages in, %d out; CPU %.1f s, peak RSS %d MiB; %s\n",
		sr.Iterations, sr.Converged, sr.Resent, len(sr.Dropped), sr.Refused, conn.Received.Load(), conn.Sent.Load(), processCPU().Seconds(), peakRSS()>>20, filepath.Join(dir, "so.json"))
	return nil
}

func isNaN(v float64) bool { return v != v }

// serveEV hosts every --hosts-th vehicle of the day, from the --host-th,
// and writes their final schedules to --data/ev-HOST/schedules.json.
func serveEV(cmd *cobra.Command, o *serveOptions) error {
	f := platformServeFlags
	pl, err := f.plan(cmd)
	if err != nil {
		return err
	}
	evs, ids, which, err := pl.Host(f.host, f.hosts)
	if err != nil {
		return err
	}
	log := roleLog(cmd, "ev").With("host", f.host)
	pubPath := f.soPublic
	if pubPath == "" {
		pubPath = filepath.Join(o.data, "so", "public.key")
	}
	soPub, err := waitSOPublic(o.ctx, pubPath, 30*time.Second)
	if err != nil {
		return err
	}
	url := natsURL(o.data, f.nats)
	conn, err := transport.Connect(url, fmt.Sprintf("ev-%d", f.host), 30*time.Second, log)
	if err != nil {
		return err
	}
	defer conn.Close()
	met, err := startMetrics(o, "ev", filepath.Join(o.data, fmt.Sprintf("ev-%d", f.host)), conn, log)
	if err != nil {
		return err
	}
	out := cmd.OutOrStdout()
	fmt.Fprintf(out, "ev %d/%d: hosting %d vehicles over %s\n", f.host, f.hosts, len(evs), url)
	var onBroadcast func(int)
	if v := os.Getenv(faultKillEV); v != "" {
		var h, r int
		if _, err := fmt.Sscanf(v, "%d:%d", &h, &r); err == nil && h == f.host {
			onBroadcast = func(round int) {
				if round >= r {
					_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
				}
			}
		}
	}
	res, err := service.RunEVHost(o.ctx, service.EVHostConfig{SOKey: soPub, Slots: pl.Problem.Slots, DT: pl.Problem.DT, EVs: evs, Senders: ids, Conn: conn, Log: log, Metrics: met,
		Name: fmt.Sprintf("ev-%d", f.host), OnBroadcast: onBroadcast, Masking: f.privacy == "masking"})
	if err != nil {
		if o.ctx.Err() != nil {
			fmt.Fprintf(out, "ev %d/%d: stopped before the end of the coordination\n", f.host, f.hosts)
			return nil
		}
		return err
	}
	hs := &day.HostSchedules{Schema: day.SchedulesSchema, Host: f.host, Hosts: f.hosts, Index: which, Schedules: res.Schedules}
	for _, ev := range evs {
		hs.IDs = append(hs.IDs, ev.ID)
	}
	path := filepath.Join(o.data, fmt.Sprintf("ev-%d", f.host), "schedules.json")
	if err := day.WriteJSONFile(path, hs); err != nil {
		return err
	}
	fmt.Fprintf(out, "ev %d/%d: done, %d reports sent; CPU %.1f s, peak RSS %d MiB; %s\n", f.host, f.hosts, res.Answered, processCPU().Seconds(), peakRSS()>>20, path)
	return nil
}

// startMetrics serves a role's Prometheus metrics on --metrics and records
// the bound address in dir/metrics.
func startMetrics(o *serveOptions, role, dir string, conn *transport.Conn, log *slog.Logger) (*service.Metrics, error) {
	met := service.NewMetrics(role, conn)
	if platformServeFlags.metrics == "" {
		return met, nil
	}
	addr, err := service.ServeMetrics(o.ctx, platformServeFlags.metrics, met, log)
	if err != nil {
		return nil, err
	}
	if err := day.WriteText(filepath.Join(dir, "metrics"), "http://"+addr+"/metrics\n"); err != nil {
		return nil, err
	}
	return met, nil
}

// soKey loads the SO's Ed25519 signing key from dir/key, or makes one
// (crypto/rand) and writes it (0600) with dir/public.key for the vehicles.
// A restarted SO finds its key again, so the hosts that verified its
// broadcasts before the crash go on verifying them.
func soKey(dir string) (ed25519.PrivateKey, error) {
	path := filepath.Join(dir, "key")
	if b, err := os.ReadFile(path); err == nil {
		seed, err := hex.DecodeString(strings.TrimSpace(string(b)))
		if err != nil || len(seed) != ed25519.SeedSize {
			return nil, fmt.Errorf("the SO's key %s is damaged (want %d hex-encoded bytes); remove it and its public.key to make a new one (the EV hosts must then read the new public.key)", path, ed25519.SeedSize)
		}
		key := ed25519.NewKeyFromSeed(seed)
		return key, durable.WriteFile(filepath.Join(dir, "public.key"), []byte(hex.EncodeToString(key.Public().(ed25519.PublicKey))+"\n"), 0o644)
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	pub, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	if err := durable.WriteFile(path, []byte(hex.EncodeToString(key.Seed())+"\n"), 0o600); err != nil {
		return nil, err
	}
	return key, durable.WriteFile(filepath.Join(dir, "public.key"), []byte(hex.EncodeToString(pub)+"\n"), 0o644)
}

// waitSOPublic reads the SO's public key, waiting (bounded) for an SO
// started at the same time to write it.
func waitSOPublic(ctx context.Context, path string, wait time.Duration) (ed25519.PublicKey, error) {
	deadline := time.Now().Add(wait)
	for {
		b, err := os.ReadFile(path)
		if err == nil {
			pub, err := hex.DecodeString(strings.TrimSpace(string(b)))
			if err != nil || len(pub) != ed25519.PublicKeySize {
				return nil, fmt.Errorf("the SO's public key %s is damaged (want %d hex-encoded bytes)", path, ed25519.PublicKeySize)
			}
			return pub, nil
		}
		if !errors.Is(err, os.ErrNotExist) {
			return nil, err
		}
		if !time.Now().Before(deadline) {
			return nil, fmt.Errorf("no SO public key at %s after %s: start gridveil serve --role so with the same --data first, or give --so-public", path, wait)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}
