package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/gridveil/gridveil/auth"
	"github.com/gridveil/gridveil/auth/authnet"
	"github.com/gridveil/gridveil/ocpp"
)

// ocppServeFlags are gridveil serve's flags for the LAG's OCPP endpoint.
var ocppServeFlags struct {
	addr, stations, schedules, cert, key, clientCA string
	ping                                           time.Duration
}

func init() {
	serveFlagHooks = append(serveFlagHooks, func(fs *pflag.FlagSet) {
		fs.StringVar(&ocppServeFlags.addr, "ocpp", "", "lag: also serve OCPP 2.0.1 and 2.1 charging stations at ws://ADDR/ocpp/STATION_ID (docs/OCPP.md)")
		fs.StringVar(&ocppServeFlags.stations, "ocpp-stations", "", "lag: the stations allowed to connect, one 'STATION_ID PASSWORD' a line")
		fs.StringVar(&ocppServeFlags.schedules, "schedules", "", "lag: a finished gridveil sim run; the n-th OCPP transaction gets vehicle n's schedule")
		fs.StringVar(&ocppServeFlags.cert, "ocpp-tls-cert", "", "lag: TLS certificate of the OCPP endpoint (security profile 2; with --ocpp-tls-key)")
		fs.StringVar(&ocppServeFlags.key, "ocpp-tls-key", "", "lag: TLS key of the OCPP endpoint")
		fs.StringVar(&ocppServeFlags.clientCA, "ocpp-tls-client-ca", "", "lag: PEM CA certificate(s) of the stations' TLS client certificates (security profile 3: CN = station id; no passwords)")
		fs.DurationVar(&ocppServeFlags.ping, "ocpp-ping", ocpp.DefaultPingInterval, "lag: WebSocket ping interval of the OCPP endpoint; a station silent for two intervals is closed (0: no pings)")
	})
	// The CSMS runs beside the LAG's vehicle port: the LAG role is wrapped,
	// not rewritten, so the LAG's own start-up stays as it is.
	lag := serveRoles["lag"]
	serveRoles["lag"] = func(cmd *cobra.Command, o *serveOptions) error {
		if ocppServeFlags.addr == "" {
			if ocppServeFlags.stations != "" || ocppServeFlags.schedules != "" || ocppServeFlags.cert != "" || ocppServeFlags.clientCA != "" {
				return fmt.Errorf("--ocpp-stations, --schedules and --ocpp-tls-* configure the OCPP endpoint: give --ocpp ADDR too")
			}
			return lag(cmd, o)
		}
		ctx, cancel := context.WithCancel(o.ctx)
		defer cancel()
		// The CSMS accepts the idTokens of the sessions this LAG holds; until
		// the LAG is open (it may wait for its CA) it holds none.
		srv := &pendingLAG{}
		o.lagReady = srv.Store
		sessions := ocpp.NewLAGSessions(srv)
		done, err := startOCPP(ctx, cmd.OutOrStdout(), cmd.ErrOrStderr(), filepath.Join(o.data, "lag-"+o.lagID, "ocpp"), o.quiet, sessions)
		if err != nil {
			return err
		}
		err = lag(cmd, o)
		cancel()
		if oerr := <-done; err == nil {
			err = oerr
		}
		return err
	}
}

// pendingLAG is the CSMS's token index of a LAG server that may not be
// open yet: until it is, no token is held.
type pendingLAG struct {
	atomic.Pointer[authnet.LAGServer]
}

func (p *pendingLAG) HoldsStationToken(t auth.StationToken) bool {
	s := p.Load()
	return s != nil && s.HoldsStationToken(t)
}

func (p *pendingLAG) StationTokens() []auth.StationToken {
	if s := p.Load(); s != nil {
		return s.StationTokens()
	}
	return nil
}

// readStations reads a stations file: one "STATION_ID PASSWORD" a line;
// blank lines and lines starting with # are skipped. Under security
// profile 3 (certs) a line may be the STATION_ID alone: the station's
// client certificate identifies it.
func readStations(path string, certs bool) (map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("--ocpp-stations: %w", err)
	}
	defer f.Close()
	out := map[string]string{}
	sc := bufio.NewScanner(f)
	for line := 1; sc.Scan(); line++ {
		s := strings.TrimSpace(sc.Text())
		if s == "" || strings.HasPrefix(s, "#") {
			continue
		}
		fields := strings.Fields(s)
		if certs && len(fields) == 1 {
			fields = append(fields, "")
		}
		if len(fields) != 2 {
			return nil, fmt.Errorf("--ocpp-stations %s line %d: want 'STATION_ID PASSWORD', got %d field(s)", path, line, len(fields))
		}
		if strings.ContainsAny(fields[0], "/?#%") || len(fields[0]) > 48 {
			return nil, fmt.Errorf("--ocpp-stations %s line %d: station id %q: at most 48 characters, none of / ? # %%", path, line, fields[0])
		}
		if len(fields[1]) < 16 && !certs {
			return nil, fmt.Errorf("--ocpp-stations %s line %d: the password of %q has %d characters; OCPP 2.0.1 asks for at least 16", path, line, fields[0], len(fields[1]))
		}
		if _, dup := out[fields[0]]; dup {
			return nil, fmt.Errorf("--ocpp-stations %s line %d: station %q listed twice", path, line, fields[0])
		}
		out[fields[0]] = fields[1]
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("--ocpp-stations %s: %w", path, err)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("--ocpp-stations %s lists no station", path)
	}
	return out, nil
}

// startOCPP opens the CSMS with its metering log in dir and serves it
// until ctx ends; done receives Serve's result.
func startOCPP(ctx context.Context, out, errw io.Writer, dir string, quiet bool, authz ocpp.Authorizer) (<-chan error, error) {
	f := ocppServeFlags
	if f.stations == "" {
		return nil, fmt.Errorf("--ocpp needs --ocpp-stations FILE: the stations allowed to connect, one 'STATION_ID PASSWORD' a line")
	}
	if f.clientCA != "" && (f.cert == "" || f.key == "") {
		return nil, fmt.Errorf("--ocpp-tls-client-ca (security profile 3) needs the endpoint's own --ocpp-tls-cert and --ocpp-tls-key")
	}
	if f.ping < 0 {
		return nil, fmt.Errorf("--ocpp-ping %v: give an interval of 0 (no pings) or more", f.ping)
	}
	stations, err := readStations(f.stations, f.clientCA != "")
	if err != nil {
		return nil, err
	}
	var tlsConf *tls.Config
	switch {
	case f.cert != "" && f.key != "":
		cert, err := tls.LoadX509KeyPair(f.cert, f.key)
		if err != nil {
			return nil, fmt.Errorf("--ocpp-tls-cert/--ocpp-tls-key: %w", err)
		}
		tlsConf = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
		if f.clientCA != "" {
			pem, err := os.ReadFile(f.clientCA)
			if err != nil {
				return nil, fmt.Errorf("--ocpp-tls-client-ca: %w", err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("--ocpp-tls-client-ca %s: no PEM certificate in it; give the CA certificate that issued the stations' client certificates", f.clientCA)
			}
			tlsConf.ClientCAs, tlsConf.ClientAuth = pool, tls.RequireAndVerifyClientCert
		}
	case f.cert != "" || f.key != "":
		return nil, fmt.Errorf("give both --ocpp-tls-cert and --ocpp-tls-key (TLS, security profile 2), or neither (profile 1, loopback only)")
	}
	ping := f.ping
	if ping == 0 {
		ping = -1 // Options: negative is never
	}
	opts := ocpp.Options{Stations: stations, Dir: dir, Authorizer: authz, ClientCerts: f.clientCA != "", PingInterval: ping}
	if f.schedules != "" {
		run, err := ocpp.ReadSimRun(f.schedules)
		if err != nil {
			return nil, fmt.Errorf("--schedules: %w", err)
		}
		opts.Schedules = run
	}
	level := slog.LevelInfo
	if quiet {
		level = slog.LevelWarn
	}
	opts.Log = slog.New(slog.NewTextHandler(errw, &slog.HandlerOptions{Level: level}))
	ln, err := net.Listen("tcp", f.addr)
	if err != nil {
		return nil, fmt.Errorf("--ocpp: %w", err)
	}
	if tlsConf == nil && !isLoopback(ln.Addr()) {
		ln.Close()
		return nil, fmt.Errorf("--ocpp %s is not a loopback address: basic auth without TLS (security profile 1) is for loopback only; give --ocpp-tls-cert and --ocpp-tls-key", f.addr)
	}
	csms, err := ocpp.New(opts)
	if err != nil {
		ln.Close()
		return nil, err
	}
	scheme, profile := "ws", 1
	if tlsConf != nil {
		scheme, profile = "wss", 2
	}
	if opts.ClientCerts {
		profile = 3
	}
	if err := os.WriteFile(filepath.Join(dir, "addr"), []byte(ln.Addr().String()+"\n"), 0o644); err != nil {
		ln.Close()
		csms.Close()
		return nil, err
	}
	fmt.Fprintf(out, "lag: OCPP 2.0.1/2.1 CSMS on %s://%s/ocpp/STATION_ID (security profile %d) for %d station(s), metering to %s\n", scheme, ln.Addr(), profile, len(stations), filepath.Join(dir, ocpp.MeteringFile))
	done := make(chan error, 1)
	go func() { done <- csms.Serve(ctx, ln, tlsConf) }()
	return done, nil
}

func isLoopback(a net.Addr) bool {
	ta, ok := a.(*net.TCPAddr)
	return ok && ta.IP.IsLoopback()
}
