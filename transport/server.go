package transport

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// MaxPayload is the largest message the embedded server accepts, bytes.
// Every gridveil message is bounded well below it (charging.MaxMessageSize
// is 64 KiB); NATS's default is 1 MiB.
const MaxPayload = 1 << 20

// ServerConfig describes an embedded NATS server.
type ServerConfig struct {
	// Host to listen on; default 127.0.0.1. Anything but loopback exposes
	// an unauthenticated message bus: only for a private network.
	Host string
	// Port for clients; 0 picks a free one.
	Port int
	// Name of the server in a cluster (default: from the port).
	Name string
	// Cluster, when set, joins a NATS cluster: the name every node shares,
	// this node's route port (0 picks one) and the other nodes' route URLs
	// (nats://host:port). This is NATS clustering, nothing of gridveil's.
	Cluster     string
	ClusterPort int
	Routes      []string
	// Log receives the server's notices and errors (nil: discarded).
	Log *slog.Logger
}

// Server is an embedded nats-server.
type Server struct {
	ns *server.Server
}

// StartServer starts an embedded NATS server and waits until it accepts
// clients (and, in a cluster, has started routing).
func StartServer(cfg ServerConfig) (*Server, error) {
	host := cfg.Host
	if host == "" {
		host = "127.0.0.1"
	}
	port := cfg.Port
	if port == 0 {
		port = server.RANDOM_PORT
	}
	opts := &server.Options{
		ServerName: cfg.Name,
		Host:       host,
		Port:       port,
		NoSigs:     true,
		MaxPayload: MaxPayload,
		// Slow consumers are cut off rather than let a publisher stall the
		// bus; the protocols retransmit.
		WriteDeadline: 10 * time.Second,
	}
	if cfg.Cluster != "" {
		cp := cfg.ClusterPort
		if cp == 0 {
			cp = server.RANDOM_PORT
		}
		opts.Cluster = server.ClusterOpts{Name: cfg.Cluster, Host: host, Port: cp}
		for _, r := range cfg.Routes {
			u, err := url.Parse(r)
			if err != nil || u.Host == "" {
				return nil, fmt.Errorf("NATS route %q is not a URL like nats://127.0.0.1:6222", r)
			}
			opts.Routes = append(opts.Routes, u)
		}
	}
	ns, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("configuring the embedded NATS server: %w", err)
	}
	if cfg.Log != nil {
		ns.SetLoggerV2(&natsLogger{cfg.Log}, false, false, false)
	}
	go ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		ns.Shutdown()
		if port > 0 {
			if ln, err := net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(port))); err != nil {
				return nil, fmt.Errorf("the embedded NATS server cannot listen on %s:%d (%v); choose another port or stop what holds it", host, port, err)
			} else {
				ln.Close()
			}
		}
		return nil, errors.New("the embedded NATS server did not become ready in 10 s")
	}
	return &Server{ns: ns}, nil
}

// ClientURL is the URL clients connect to.
func (s *Server) ClientURL() string { return s.ns.ClientURL() }

// ClusterURL is the route URL other cluster nodes connect to ("" outside
// a cluster).
func (s *Server) ClusterURL() string {
	a := s.ns.ClusterAddr()
	if a == nil {
		return ""
	}
	return "nats://" + a.String()
}

// Routes is the number of cluster routes this node has.
func (s *Server) Routes() int { return s.ns.NumRoutes() }

// Shutdown stops the server and waits until it has.
func (s *Server) Shutdown() {
	s.ns.Shutdown()
	s.ns.WaitForShutdown()
}

// natsLogger hands the server's log lines to slog.
type natsLogger struct{ l *slog.Logger }

func (n *natsLogger) Noticef(f string, v ...any) { n.l.Info(strings.TrimSpace(fmt.Sprintf(f, v...))) }
func (n *natsLogger) Warnf(f string, v ...any)   { n.l.Warn(strings.TrimSpace(fmt.Sprintf(f, v...))) }
func (n *natsLogger) Fatalf(f string, v ...any)  { n.l.Error(strings.TrimSpace(fmt.Sprintf(f, v...))) }
func (n *natsLogger) Errorf(f string, v ...any)  { n.l.Error(strings.TrimSpace(fmt.Sprintf(f, v...))) }
func (n *natsLogger) Debugf(f string, v ...any)  { n.l.Debug(strings.TrimSpace(fmt.Sprintf(f, v...))) }
func (n *natsLogger) Tracef(f string, v ...any)  {}
