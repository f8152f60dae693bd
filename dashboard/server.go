package dashboard

import (
	"bytes"
	"crypto/subtle"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"
)

//go:embed assets
var assets embed.FS

// MinTokenLength is the shortest token accepted for a dashboard that
// listens beyond loopback.
const MinTokenLength = 16

// ErrToken is wrapped by errors about the access token.
var ErrToken = errors.New("dashboard token")

// tokenCookie carries the token after a browser opened /?token=...,
// so that the token leaves the address bar and every later request
// (the event stream included) carries it.
const tokenCookie = "gridveil_dashboard"

// Config configures a dashboard server.
type Config struct {
	// Run is the finished run shown (OpenRun("") for none).
	Run *Run
	// Live is the followed coordination (NewLive with no Follow for none).
	Live *Live
	// Token, if set, is demanded of every request: an Authorization:
	// Bearer header, the cookie set by opening /?token=TOKEN, or the
	// token query parameter.
	Token string
	// PushInterval is the least time between two events of one stream
	// (default 100 ms): what a fast coordination costs a browser is
	// bounded, the points of the iterations between are sent together.
	PushInterval time.Duration
	// Heartbeat is how often an idle stream gets a comment line, so that
	// proxies and the browser see it alive (default 15 s).
	Heartbeat time.Duration
	Log       *slog.Logger
}

// Server is the dashboard's HTTP handler.
type Server struct {
	cfg Config
	mux *http.ServeMux
}

// CheckListen refuses to listen beyond loopback without a token of at
// least MinTokenLength characters.
func CheckListen(addr, token string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("--addr %q: %w; give host:port, e.g. 127.0.0.1:8080", addr, err)
	}
	if token != "" && len(token) < MinTokenLength {
		return fmt.Errorf("%w is %d characters: give at least %d (e.g. from `openssl rand -hex 16`)", ErrToken, len(token), MinTokenLength)
	}
	loop := host == "localhost"
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		loop = true
	}
	if !loop && token == "" {
		return fmt.Errorf("%w: --addr %s listens beyond this machine; give --token (at least %d characters, e.g. from `openssl rand -hex 16`, or in GRIDVEIL_DASHBOARD_TOKEN) or listen on 127.0.0.1", ErrToken, addr, MinTokenLength)
	}
	return nil
}

// New returns the dashboard's handler.
func New(cfg Config) (*Server, error) {
	if cfg.Run == nil || cfg.Live == nil {
		return nil, errors.New("dashboard.New: Config.Run and Config.Live are required")
	}
	if cfg.PushInterval <= 0 {
		cfg.PushInterval = 100 * time.Millisecond
	}
	if cfg.Heartbeat <= 0 {
		cfg.Heartbeat = 15 * time.Second
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	s := &Server{cfg: cfg, mux: http.NewServeMux()}
	sub, err := fs.Sub(assets, "assets")
	if err != nil {
		return nil, err
	}
	index, err := fs.ReadFile(sub, "index.html")
	if err != nil {
		return nil, err
	}
	s.mux.Handle("/assets/", http.StripPrefix("/assets/", http.FileServerFS(sub)))
	s.mux.HandleFunc("/{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		_, _ = w.Write(index)
	})
	s.api("/api/v1/run", func(r *http.Request) (any, error) { return s.runInfo(), nil })
	s.api("/api/v1/feeder", func(r *http.Request) (any, error) { return cfg.Run.Feeder(), nil })
	s.api("/api/v1/coordination", func(r *http.Request) (any, error) { return cfg.Run.Coordination(), nil })
	s.api("/api/v1/privacy", func(r *http.Request) (any, error) { return cfg.Run.Privacy(r.URL.Query().Get("bus")) })
	s.api("/api/v1/market", func(r *http.Request) (any, error) { return cfg.Run.Market(), nil })
	s.api("/api/v1/auth", func(r *http.Request) (any, error) { return cfg.Run.Auth(), nil })
	s.api("/api/v1/meters", func(r *http.Request) (any, error) { return cfg.Run.Meters(), nil })
	s.api("/api/v1/homes", func(r *http.Request) (any, error) {
		home := 0
		if q := r.URL.Query().Get("home"); q != "" {
			n, err := strconv.Atoi(q)
			if err != nil {
				return nil, fmt.Errorf("home %q: give a home's index (0 for the first)", q)
			}
			home = n
		}
		return cfg.Run.Homes(home, r.URL.Query().Get("scheduler"))
	})
	s.api("/api/v1/live", func(r *http.Request) (any, error) { return cfg.Live.State(), nil })
	s.mux.HandleFunc("/api/v1/events", s.events)
	s.mux.HandleFunc("/api/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, fmt.Sprintf("no API at %s: the API is /api/v1/{run,feeder,coordination,privacy,market,auth,meters,homes,live,events} (docs/DASHBOARD.md)", r.URL.Path))
	})
	return s, nil
}

// RunInfo is /api/v1/run: which files the run has.
type RunInfo struct {
	Schema    string       `json:"schema"` // gridveil/dashboard-run/v1
	Dir       string       `json:"dir"`
	Files     []FileStatus `json:"files"`
	Following bool         `json:"following"`
}

func (s *Server) runInfo() RunInfo {
	return RunInfo{Schema: "gridveil/dashboard-run/v1", Dir: s.cfg.Run.Dir(), Files: s.cfg.Run.Files(), Following: s.cfg.Live.State().Following}
}

func (s *Server) api(path string, f func(*http.Request) (any, error)) {
	s.mux.HandleFunc(path, func(w http.ResponseWriter, r *http.Request) {
		v, err := f(r)
		if err != nil {
			writeError(w, http.StatusBadRequest, err.Error())
			return
		}
		var buf bytes.Buffer
		if err := json.NewEncoder(&buf).Encode(v); err != nil {
			writeError(w, http.StatusInternalServerError, "encoding "+path+": "+err.Error())
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		_, _ = w.Write(buf.Bytes())
	})
}

func writeError(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": msg})
}

// ServeHTTP serves the dashboard: read-only (GET and HEAD), behind the
// token when there is one, with headers that keep the page from loading
// anything but its own assets.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Frame-Options", "DENY")
	// ECharts writes its tooltips' styles inline; nothing else is allowed
	// from anywhere but this server.
	h.Set("Content-Security-Policy", "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'")
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		h.Set("Allow", "GET, HEAD")
		writeError(w, http.StatusMethodNotAllowed, fmt.Sprintf("%s: the dashboard is read-only; it answers GET and HEAD", r.Method))
		return
	}
	if s.cfg.Token != "" {
		ok, fromQuery := s.authorized(r)
		if !ok {
			h.Set("WWW-Authenticate", `Bearer realm="gridveil dashboard"`)
			writeError(w, http.StatusUnauthorized, "this dashboard needs its token: open /?token=TOKEN once in the browser, or send Authorization: Bearer TOKEN")
			return
		}
		if fromQuery {
			http.SetCookie(w, &http.Cookie{Name: tokenCookie, Value: s.cfg.Token, Path: "/", HttpOnly: true, SameSite: http.SameSiteStrictMode})
			if r.URL.Path == "/" {
				// Take the token out of the address bar and history.
				http.Redirect(w, r, "/", http.StatusSeeOther)
				return
			}
		}
	}
	s.mux.ServeHTTP(w, r)
}

func (s *Server) authorized(r *http.Request) (ok, fromQuery bool) {
	want := []byte(s.cfg.Token)
	eq := func(got string) bool { return subtle.ConstantTimeCompare([]byte(got), want) == 1 }
	if a := r.Header.Get("Authorization"); strings.HasPrefix(a, "Bearer ") && eq(strings.TrimPrefix(a, "Bearer ")) {
		return true, false
	}
	if c, err := r.Cookie(tokenCookie); err == nil && eq(c.Value) {
		return true, false
	}
	if q := r.URL.Query().Get("token"); q != "" && eq(q) {
		return true, true
	}
	return false, false
}

// events streams the live state by server-sent events: first the whole
// state ("state"), then "progress" deltas, coalesced to at most one per
// PushInterval; a new day sends a whole "state" again. The browser's
// EventSource reconnects by itself and gets the whole state again.
func (s *Server) events(w http.ResponseWriter, r *http.Request) {
	fl, ok := w.(http.Flusher)
	if !ok {
		writeError(w, http.StatusInternalServerError, "this connection cannot stream events")
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodHead {
		return
	}
	ctx := r.Context()
	send := func(event string, v any) bool {
		data, err := json.Marshal(v)
		if err != nil {
			s.cfg.Log.Error("encoding an event", "event", event, "err", err)
			return false
		}
		n, err := fmt.Fprintf(w, "event: %s\ndata: %s\n\n", event, data)
		s.cfg.Live.addStreamBytes(n)
		if err != nil {
			return false
		}
		fl.Flush()
		return true
	}
	n, _ := fmt.Fprint(w, "retry: 1000\n\n")
	s.cfg.Live.addStreamBytes(n)
	var c cursor
	first := true
	heartbeat := time.NewTicker(s.cfg.Heartbeat)
	defer heartbeat.Stop()
	for {
		full, delta, wait := s.cfg.Live.next(&c, first)
		first = false
		switch {
		case full != nil:
			if !send("state", full) {
				return
			}
		case delta != nil:
			if !send("progress", delta) {
				return
			}
		}
		if full != nil || delta != nil {
			// Coalesce: what arrives in the next interval goes in one event.
			select {
			case <-ctx.Done():
				return
			case <-time.After(s.cfg.PushInterval):
			}
			continue
		}
		select {
		case <-ctx.Done():
			return
		case <-wait:
		case <-heartbeat.C:
			n, err := fmt.Fprint(w, ": alive\n\n")
			s.cfg.Live.addStreamBytes(n)
			if err != nil {
				return
			}
			fl.Flush()
		}
	}
}
