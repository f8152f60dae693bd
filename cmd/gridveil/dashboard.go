package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/gridveil/gridveil/dashboard"
	"github.com/gridveil/gridveil/transport"
)

type dashboardFlags struct {
	nats  string
	run   string
	addr  string
	token string
}

func newDashboardCmd() *cobra.Command {
	var f dashboardFlags
	cmd := &cobra.Command{
		Use:   "dashboard",
		Short: "Serve the live dashboard of a run and of a running coordination",
		Long: `dashboard serves a web page (and its JSON API, /api/v1/..., docs/DASHBOARD.md)
that shows a finished run's files (--run: the --out directory of gridveil sim,
up, home or ldp) and follows a running coordination live (--nats: the
platform's NATS server, whose SO publishes every iteration's progress).

It listens on 127.0.0.1 by default. Another address needs --token (or
GRIDVEIL_DASHBOARD_TOKEN): open http://HOST:PORT/?token=TOKEN once; the
browser keeps it in a cookie. The dashboard is read-only.`,
		Example: `  gridveil sim --privacy-compare --out out/sim && gridveil dashboard --run out/sim
  gridveil up --pace 50ms --nats nats://127.0.0.1:4222 &  gridveil dashboard --nats nats://127.0.0.1:4222 --run out/up
  GRIDVEIL_DASHBOARD_TOKEN=$(openssl rand -hex 16) gridveil dashboard --addr 0.0.0.0:8080 --run out/sim`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runDashboard(cmd, &f) },
	}
	fl := cmd.Flags()
	fl.StringVar(&f.nats, "nats", "", "follow the coordination on this NATS server or cluster (nats://host:port[,...])")
	fl.StringVar(&f.run, "run", "", "show this finished run's directory (the --out of gridveil sim, up, home or ldp)")
	fl.StringVar(&f.addr, "addr", "127.0.0.1:8080", "address to listen on (port 0 picks a free one)")
	fl.StringVar(&f.token, "token", "", "access token, required beyond loopback (default: $GRIDVEIL_DASHBOARD_TOKEN)")
	return cmd
}

func runDashboard(cmd *cobra.Command, f *dashboardFlags) error {
	token := f.token
	if token == "" {
		token = os.Getenv("GRIDVEIL_DASHBOARD_TOKEN")
	}
	if err := dashboard.CheckListen(f.addr, token); err != nil {
		return err
	}
	if f.run == "" && f.nats == "" {
		return errors.New("nothing to show: give --run DIR (a finished run's --out) and/or --nats URL (a running platform)")
	}
	run, err := dashboard.OpenRun(f.run)
	if err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	live := dashboard.NewLive(log)
	parent := cmd.Context()
	if parent == nil {
		parent = context.Background()
	}
	ctx, stop := signal.NotifyContext(parent, os.Interrupt, syscall.SIGTERM)
	defer stop()
	if f.nats != "" {
		conn, err := transport.Connect(f.nats, "dashboard", 10*time.Second, log)
		if err != nil {
			return fmt.Errorf("connecting to NATS at %s to follow the coordination: %w", redactURLs(f.nats), err)
		}
		defer conn.Close()
		unsub, err := live.Follow(conn)
		if err != nil {
			return err
		}
		defer func() { _ = unsub() }()
	}
	srv, err := dashboard.New(dashboard.Config{Run: run, Live: live, Token: token, Log: log})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", f.addr)
	if err != nil {
		return fmt.Errorf("listening on %s: %w; choose another --addr", f.addr, err)
	}
	hs := &http.Server{Handler: srv, ReadHeaderTimeout: 10 * time.Second, BaseContext: func(net.Listener) context.Context { return ctx }}
	// The token is never printed: whoever started the dashboard has it.
	fmt.Fprintf(cmd.OutOrStdout(), "gridveil dashboard: http://%s/ (run %s, live %s); stop with Ctrl-C\n", ln.Addr(), orNone(f.run), orNone(redactURLs(f.nats)))
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serving the dashboard: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil {
		return fmt.Errorf("stopping the dashboard: %w", err)
	}
	return nil
}

// redactURLs hides the user and password of NATS URLs, which are secrets.
func redactURLs(urls string) string {
	parts := strings.Split(urls, ",")
	for i, p := range parts {
		if u, err := url.Parse(p); err == nil && u.User != nil {
			u.User = url.User("REDACTED")
			parts[i] = u.String()
		}
	}
	return strings.Join(parts, ",")
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}
