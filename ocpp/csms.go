package ocpp

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
)

// Subprotocol is the WebSocket subprotocol of OCPP-J 2.0.1.
const Subprotocol = "ocpp2.0.1"

// Subprotocol21 is the WebSocket subprotocol of OCPP-J 2.1, the edition
// with bidirectional (V2X) charging profiles: a station that offers it is
// served in 2.1 and can be sent discharge schedules (TxProfileV2X).
const Subprotocol21 = "ocpp2.1"

// PathPrefix is the CSMS endpoint: a station connects to PathPrefix+ID.
const PathPrefix = "/ocpp/"

// DefaultPingInterval is how often the CSMS pings a station unless
// Options.PingInterval says otherwise.
const DefaultPingInterval = time.Minute

// DefaultStopVoidedEvery is how often Serve looks for running transactions
// whose session ended, unless Options.StopVoidedEvery says otherwise.
const DefaultStopVoidedEvery = 10 * time.Second

// Limits of the CSMS's connections.
const (
	maxFrame  = 256 << 10 // largest frame a station may send
	recentIDs = 4096      // CALL ids remembered per station to refuse duplicates
	writeWait = 10 * time.Second
)

// Options configure a CSMS.
type Options struct {
	// Stations are the charging stations allowed to connect: identity ->
	// password (HTTP basic auth, OCPP security profiles 1 and 2).
	Stations map[string]string
	// ClientCerts is security profile 3: a station is identified by its
	// TLS client certificate (Subject CN = the station id of the URL,
	// verified against the ClientCAs of Serve's tls.Config, which must
	// require one), not by basic auth; the station must still be listed.
	ClientCerts bool
	// Authorizer decides whether an idToken is held by a session the LAG
	// admitted (LAGSessions); nil: none is, and no transaction is
	// recorded.
	Authorizer Authorizer
	// Schedules gives each started transaction its vehicle's schedule; nil:
	// no TxProfiles are sent.
	Schedules Schedules
	// Dir is where metering.jsonl is kept.
	Dir string
	// Heartbeat is the interval told to booting stations (default 5 min);
	// a connection silent for three intervals is closed.
	Heartbeat time.Duration
	// CallTimeout bounds the wait for a station's answer (default 30 s).
	CallTimeout time.Duration
	// StopVoidedEvery is how often Serve runs StopVoided: the transactions
	// of sessions that ended are stopped within about this long (default
	// DefaultStopVoidedEvery; negative: never).
	StopVoidedEvery time.Duration
	// PingInterval is how often the CSMS sends each station a WebSocket
	// ping (default DefaultPingInterval; negative: never). A station that
	// sends nothing, not even a pong, for two intervals in a row is taken
	// for dead: its connection is closed and logged.
	PingInterval time.Duration
	// Log receives one line per event; nil: discarded.
	Log *slog.Logger
}

// CSMS is gridveil's charging station management system: an http.Handler
// for the WebSocket endpoint PathPrefix+ID.
type CSMS struct {
	opts     Options
	log      *slog.Logger
	upgrader websocket.Upgrader

	mu       sync.Mutex
	conns    map[string]*Conn
	stations map[string]*stationState
	txs      map[txKey]*transaction
	inUse    map[string]txKey // session token -> its transaction that has not ended
	nextVeh  int              // vehicle index of the next started transaction
	meter    *os.File
	closed   bool
	wg       sync.WaitGroup
}

type txKey struct{ station, tx string }

// transaction is what the CSMS keeps about a transaction.
type transaction struct {
	start     string
	evse      int
	token     string // the session token that authorised it
	stopAsked bool   // the station accepted a RequestStopTransaction (its session ended)
	sched     VehicleSchedule
	hasSched  bool
	profileID int
	seqs      map[int]bool
	ended     bool
}

// stationState survives reconnections: the CALL ids the station used,
// to refuse a repeated one.
type stationState struct {
	ids   map[string]bool
	order []string
}

// New opens a CSMS with its metering log in opts.Dir, recovering the
// transactions of an earlier run from it (a restarted CSMS gives the next
// vehicle to the next transaction, and ignores retransmitted events).
func New(opts Options) (*CSMS, error) {
	if _, err := loadSchemas(); err != nil {
		return nil, err
	}
	if len(opts.Stations) == 0 {
		return nil, errors.New("ocpp: no stations may connect: list them, one STATION_ID PASSWORD a line")
	}
	if !opts.ClientCerts {
		for id, pw := range opts.Stations {
			if pw == "" {
				return nil, fmt.Errorf("ocpp: station %q has no password: give it one (security profiles 1 and 2) or identify stations by TLS client certificates (profile 3)", trimID(id))
			}
		}
	}
	if opts.Heartbeat <= 0 {
		opts.Heartbeat = 5 * time.Minute
	}
	if opts.CallTimeout <= 0 {
		opts.CallTimeout = 30 * time.Second
	}
	if opts.PingInterval == 0 {
		opts.PingInterval = DefaultPingInterval
	}
	if opts.StopVoidedEvery == 0 {
		opts.StopVoidedEvery = DefaultStopVoidedEvery
	}
	log := opts.Log
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if err := os.MkdirAll(opts.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("ocpp: data directory: %w", err)
	}
	c := &CSMS{opts: opts, log: log, conns: map[string]*Conn{}, stations: map[string]*stationState{}, txs: map[txKey]*transaction{}, inUse: map[string]txKey{}}
	c.upgrader = websocket.Upgrader{Subprotocols: []string{Subprotocol21, Subprotocol}, ReadBufferSize: 4096, WriteBufferSize: 4096}
	path := filepath.Join(opts.Dir, MeteringFile)
	if err := c.recover(path); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("ocpp: metering log: %w", err)
	}
	c.meter = f
	return c, nil
}

func (c *CSMS) recover(path string) error {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("ocpp: metering log: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for line := 1; sc.Scan(); line++ {
		var r MeterRecord
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			return fmt.Errorf("ocpp: metering log %s line %d: %w (it is written by the CSMS only: move it away to start afresh, nothing else reads it back)", path, line, err)
		}
		k := txKey{r.Station, r.Transaction}
		tx := c.txs[k]
		if tx == nil {
			tx = &transaction{start: r.Start, profileID: r.ProfileID, token: r.IDToken, seqs: map[int]bool{}}
			tx.sched = VehicleSchedule{Index: r.Vehicle, FirstSlot: r.FirstSlot, SlotSeconds: r.SlotSeconds}
			tx.hasSched = r.Vehicle >= 0
			c.txs[k] = tx
			if r.Vehicle >= c.nextVeh {
				c.nextVeh = r.Vehicle + 1
			}
		}
		tx.seqs[r.SeqNo] = true
		tx.ended = tx.ended || r.Event == "Ended"
		c.track(k, tx)
	}
	return sc.Err()
}

// track keeps inUse in step with tx: a token is in use from its
// transaction's first recorded event to its Ended event. Callers hold mu
// (or own c, in New).
func (c *CSMS) track(k txKey, tx *transaction) {
	if tx.token == "" {
		return
	}
	if tx.ended {
		if c.inUse[tx.token] == k {
			delete(c.inUse, tx.token)
		}
		return
	}
	c.inUse[tx.token] = k
}

// holds asks the Authorizer about tok, without c.mu (the LAG's lookup
// takes the LAG's own lock).
func (c *CSMS) holds(tok IDToken) bool {
	return wellFormed(tok) && c.opts.Authorizer != nil && c.opts.Authorizer.Holds(tok)
}

// tokenStatus is the authorization status of tok for transaction self
// (txKey{} for an Authorize), given held, the Authorizer's answer.
// Callers hold mu.
func (c *CSMS) tokenStatus(tok IDToken, held bool, self txKey) string {
	switch {
	case !wellFormed(tok):
		return StatusInvalid
	case !held:
		return StatusUnknown
	}
	if k, busy := c.inUse[tok.IDToken]; busy && k != self {
		return StatusConcurrentTx
	}
	return StatusAccepted
}

// Close closes every connection and the metering log.
func (c *CSMS) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	conns := make([]*Conn, 0, len(c.conns))
	for _, cn := range c.conns {
		conns = append(conns, cn)
	}
	c.mu.Unlock()
	for _, cn := range conns {
		cn.close(websocket.CloseGoingAway, "the CSMS is shutting down")
	}
	c.wg.Wait()
	return c.meter.Close()
}

// Serve serves the CSMS on ln until ctx ends (with TLS when tlsConfig is
// not nil: security profile 2), then closes every connection.
func (c *CSMS) Serve(ctx context.Context, ln net.Listener, tlsConfig *tls.Config) error {
	mux := http.NewServeMux()
	mux.Handle(PathPrefix, c)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, ErrorLog: slog.NewLogLogger(c.log.Handler(), slog.LevelWarn)}
	if tlsConfig != nil {
		ln = tls.NewListener(ln, tlsConfig)
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	sctx, stopLoop := context.WithCancel(ctx)
	loopDone := make(chan struct{})
	go func() {
		defer close(loopDone)
		c.stopLoop(sctx)
	}()
	select {
	case <-ctx.Done():
	case err := <-errc:
		stopLoop()
		<-loopDone
		c.Close()
		return err
	}
	stopLoop()
	<-loopDone
	shctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = srv.Shutdown(shctx) // hijacked WebSocket connections are closed by Close
	<-errc
	return c.Close()
}

// stopLoop runs StopVoided every StopVoidedEvery until ctx ends.
func (c *CSMS) stopLoop(ctx context.Context) {
	if c.opts.StopVoidedEvery <= 0 {
		return
	}
	t := time.NewTicker(c.opts.StopVoidedEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			c.StopVoided(ctx)
		}
	}
}

// ServeHTTP implements http.Handler: the WebSocket upgrade of a station.
// A station not listed, or with a wrong password (profiles 1 and 2) or a
// client certificate of another station (profile 3), is refused before
// the upgrade; one that offers neither ocpp2.0.1 nor ocpp2.1 is upgraded
// without a subprotocol and closed at once (OCPP 2.0.1 part 4, section
// 3.1.2).
func (c *CSMS) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	id := strings.TrimPrefix(r.URL.Path, PathPrefix)
	want, listed := c.opts.Stations[id]
	ok := id != "" && !strings.Contains(id, "/") && listed
	if c.opts.ClientCerts {
		// The TLS handshake verified the chain (RequireAndVerifyClientCert);
		// what is left is whose certificate it is.
		cn := ""
		if r.TLS != nil && len(r.TLS.VerifiedChains) > 0 {
			cn = r.TLS.VerifiedChains[0][0].Subject.CommonName
		}
		if !ok || cn != id {
			c.log.Warn("ocpp: station refused at upgrade", "station", trimID(id), "remote", r.RemoteAddr, "certificate_cn", trimID(cn))
			http.Error(w, "unknown charging station, or a client certificate of another station: connect to /ocpp/STATION_ID with a certificate whose Subject CN is STATION_ID, issued by the CSMS's client CA", http.StatusUnauthorized)
			return
		}
	} else {
		user, pass, hasAuth := r.BasicAuth()
		if !ok || !hasAuth || user != id || !equalSecret(pass, want) {
			c.log.Warn("ocpp: station refused at upgrade", "station", trimID(id), "remote", r.RemoteAddr, "basic_auth", hasAuth)
			w.Header().Set("WWW-Authenticate", `Basic realm="gridveil CSMS", charset="UTF-8"`)
			http.Error(w, "unknown charging station or wrong password: connect to /ocpp/STATION_ID with HTTP basic auth STATION_ID:PASSWORD as listed in the CSMS's stations file", http.StatusUnauthorized)
			return
		}
	}
	ws, err := c.upgrader.Upgrade(w, r, nil)
	if err != nil {
		c.log.Warn("ocpp: upgrade failed", "station", id, "err", err)
		return // the upgrader has answered
	}
	if p := ws.Subprotocol(); p != Subprotocol && p != Subprotocol21 {
		c.log.Warn("ocpp: station refused: no ocpp2.0.1 or ocpp2.1 subprotocol", "station", id, "offered", websocket.Subprotocols(r))
		msg := websocket.FormatCloseMessage(websocket.CloseProtocolError, "this CSMS speaks OCPP 2.0.1 and 2.1 only: offer Sec-WebSocket-Protocol: ocpp2.0.1 or ocpp2.1")
		_ = ws.WriteControl(websocket.CloseMessage, msg, time.Now().Add(writeWait))
		ws.Close()
		return
	}
	cn := &Conn{csms: c, station: id, proto: ws.Subprotocol(), ws: ws, pending: map[string]chan *Frame{}, done: make(chan struct{})}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		ws.Close()
		return
	}
	old := c.conns[id]
	c.conns[id] = cn
	if c.stations[id] == nil {
		c.stations[id] = &stationState{ids: map[string]bool{}}
	}
	c.wg.Add(2)
	c.mu.Unlock()
	if old != nil {
		// A station that reconnects replaces its old, likely dead, socket.
		old.close(websocket.ClosePolicyViolation, "replaced by a new connection of the same station")
	}
	c.log.Info("ocpp: station connected", "station", id, "remote", r.RemoteAddr, "protocol", cn.proto)
	go func() {
		defer c.wg.Done()
		cn.readLoop()
		c.mu.Lock()
		if c.conns[id] == cn {
			delete(c.conns, id)
		}
		c.mu.Unlock()
		c.log.Info("ocpp: station disconnected", "station", id)
	}()
	go func() {
		defer c.wg.Done()
		cn.pinger(c.opts.PingInterval)
	}()
}

// equalSecret compares passwords in constant time.
func equalSecret(a, b string) bool {
	ha, hb := sha256.Sum256([]byte(a)), sha256.Sum256([]byte(b))
	return subtle.ConstantTimeCompare(ha[:], hb[:]) == 1
}

// Connected tells whether station has an open connection.
func (c *CSMS) Connected(station string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.conns[station] != nil
}

// Call sends a CALL of action with payload req to station and decodes the
// answer into resp. Both are validated against the OCPP 2.0.1 schemas; a
// CALLERROR comes back as an *RPCError.
func (c *CSMS) Call(ctx context.Context, station, action string, req, resp any) error {
	c.mu.Lock()
	cn := c.conns[station]
	c.mu.Unlock()
	if cn == nil {
		return fmt.Errorf("ocpp: station %q is not connected", station)
	}
	return cn.Call(ctx, action, req, resp)
}

// SetTxProfile sends (or re-sends, after a re-plan) the TxProfile of
// transaction txID of station with schedule s. The profile keeps the
// transaction's id and stack level, so the station replaces the one it
// has. A station on OCPP 2.1 gets TxProfileV2X, which carries discharge;
// one on 2.0.1 gets TxProfile, in which discharge slots are 0 W.
func (c *CSMS) SetTxProfile(ctx context.Context, station, txID string, s VehicleSchedule) error {
	c.mu.Lock()
	tx := c.txs[txKey{station, txID}]
	c.mu.Unlock()
	if tx == nil {
		return fmt.Errorf("ocpp: station %q has no transaction %q", station, trimID(txID))
	}
	c.mu.Lock()
	cn := c.conns[station]
	c.mu.Unlock()
	if cn == nil {
		return fmt.Errorf("ocpp: station %q is not connected", station)
	}
	profile := TxProfile(tx.profileID, txID, s)
	if cn.proto == Subprotocol21 {
		profile = TxProfileV2X(tx.profileID, txID, s)
	}
	req := SetChargingProfileRequest{EVSEID: tx.evse, ChargingProfile: profile}
	var resp StatusResponse
	if err := cn.Call(ctx, "SetChargingProfile", req, &resp); err != nil {
		return err
	}
	if resp.Status != "Accepted" {
		return fmt.Errorf("ocpp: station %q rejected the TxProfile of transaction %q: %s", station, trimID(txID), resp.Status)
	}
	return nil
}

// StopVoided asks every station with a running transaction whose session
// token is no longer held (the vehicle's session at the LAG ended, or was
// revoked) to stop it (RequestStopTransaction), and returns how many
// stations accepted; one that accepted is not asked again. A station not
// connected, or one that rejects, is logged and asked again at the next
// call. The transaction's later events are still recorded: the energy
// drawn until it stops is settled.
func (c *CSMS) StopVoided(ctx context.Context) int {
	if c.opts.Authorizer == nil {
		return 0
	}
	var held func(string) bool
	if l, ok := c.opts.Authorizer.(TokenLister); ok {
		set := l.HeldTokens()
		held = func(t string) bool { return set[t] }
	} else {
		held = func(t string) bool { return c.opts.Authorizer.Holds(IDToken{IDToken: t, Type: TokenType}) }
	}
	c.mu.Lock()
	running := make(map[string]txKey, len(c.inUse))
	for t, k := range c.inUse {
		if tx := c.txs[k]; tx != nil && !tx.stopAsked {
			running[t] = k
		}
	}
	c.mu.Unlock()
	stopped := 0
	for t, k := range running {
		if held(t) {
			continue
		}
		var resp StatusResponse
		err := c.Call(ctx, k.station, "RequestStopTransaction", map[string]any{"transactionId": k.tx}, &resp)
		switch {
		case err != nil:
			c.log.Warn("ocpp: transaction of an ended session not stopped", "station", k.station, "transaction", trimID(k.tx), "err", err)
		case resp.Status != "Accepted":
			c.log.Warn("ocpp: station rejected stopping the transaction of an ended session", "station", k.station, "transaction", trimID(k.tx), "status", resp.Status)
		default:
			c.log.Info("ocpp: transaction of an ended session stopped", "station", k.station, "transaction", trimID(k.tx))
			c.mu.Lock()
			if tx := c.txs[k]; tx != nil {
				tx.stopAsked = true
			}
			c.mu.Unlock()
			stopped++
		}
	}
	return stopped
}

// SetStationLimit sends station a ChargingStationMaxProfile of w W: the
// station-wide limit, for example the site's share of the feeder.
func (c *CSMS) SetStationLimit(ctx context.Context, station string, profileID int, w float64) error {
	req := SetChargingProfileRequest{EVSEID: 0, ChargingProfile: StationMaxProfile(profileID, time.Now().UTC().Format(time.RFC3339), w)}
	var resp StatusResponse
	if err := c.Call(ctx, station, "SetChargingProfile", req, &resp); err != nil {
		return err
	}
	if resp.Status != "Accepted" {
		return fmt.Errorf("ocpp: station %q rejected the ChargingStationMaxProfile: %s", station, resp.Status)
	}
	return nil
}

// Conn is one station's WebSocket connection.
type Conn struct {
	csms    *CSMS
	station string
	proto   string // the negotiated subprotocol: Subprotocol or Subprotocol21
	ws      *websocket.Conn

	writeMu sync.Mutex
	callMu  sync.Mutex // one outstanding CALL at a time (OCPP-J 4.1.1)

	mu       sync.Mutex
	pending  map[string]chan *Frame
	done     chan struct{}
	doneOnce sync.Once
	// heard is set by every frame and pong from the station and cleared
	// by each ping: a ping that finds it clear had no answer to the last.
	heard atomic.Bool
}

// deadPings is how many ping intervals in a row a station may stay
// silent before it is taken for dead: two, so that one late pong (a
// stalled process on either side) does not cut a live station off.
const deadPings = 2

// pinger sends a WebSocket ping every interval until the connection
// closes. A station that lets deadPings whole intervals pass without a
// pong or any frame is dead (a cut cable, a crashed station behind a NAT
// that keeps the TCP connection up): it is closed and logged, so that its
// transactions' calls fail at once instead of at their time-out.
func (cn *Conn) pinger(every time.Duration) {
	if every <= 0 {
		return
	}
	t := time.NewTicker(every)
	defer t.Stop()
	cn.heard.Store(true)
	missed := 0
	for {
		select {
		case <-cn.done:
			return
		case <-t.C:
		}
		if cn.heard.Swap(false) {
			missed = 0
		} else if missed++; missed >= deadPings {
			cn.csms.log.Warn("ocpp: station dead: no pong or frame for two ping intervals; closing its connection", "station", cn.station, "ping_interval", every)
			cn.close(websocket.CloseGoingAway, "no answer to WebSocket pings")
			return
		}
		if err := cn.ws.WriteControl(websocket.PingMessage, nil, time.Now().Add(writeWait)); err != nil {
			cn.csms.log.Info("ocpp: ping", "station", cn.station, "err", err)
			cn.close(websocket.CloseGoingAway, "")
			return
		}
	}
}

func (cn *Conn) close(code int, reason string) {
	cn.doneOnce.Do(func() {
		close(cn.done)
		cn.writeMu.Lock()
		_ = cn.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, reason), time.Now().Add(time.Second))
		cn.writeMu.Unlock()
		cn.ws.Close()
	})
}

func (cn *Conn) write(data []byte) error {
	cn.writeMu.Lock()
	defer cn.writeMu.Unlock()
	_ = cn.ws.SetWriteDeadline(time.Now().Add(writeWait))
	return cn.ws.WriteMessage(websocket.TextMessage, data)
}

func (cn *Conn) readLoop() {
	defer cn.close(websocket.CloseNormalClosure, "")
	cn.ws.SetReadLimit(maxFrame)
	idle := 3 * cn.csms.opts.Heartbeat
	cn.ws.SetPongHandler(func(string) error {
		// A station that answers pings is alive even when it has nothing
		// to say for longer than three heartbeats.
		cn.heard.Store(true)
		return cn.ws.SetReadDeadline(time.Now().Add(idle))
	})
	for {
		_ = cn.ws.SetReadDeadline(time.Now().Add(idle))
		typ, data, err := cn.ws.ReadMessage()
		if err != nil {
			if !websocket.IsCloseError(err, websocket.CloseNormalClosure, websocket.CloseGoingAway) {
				cn.csms.log.Info("ocpp: read", "station", cn.station, "err", err)
			}
			return
		}
		cn.heard.Store(true)
		if typ != websocket.TextMessage {
			cn.reply(EncodeCallError(&RPCError{ID: "-1", Code: ErrRPCFrameworkError, Description: "OCPP-J frames are WebSocket text messages, not binary"}))
			continue
		}
		f, err := DecodeFrame(data)
		if err != nil {
			var rpc *RPCError
			errors.As(err, &rpc)
			if f != nil && (f.Type == TypeCallResult || f.Type == TypeCallError) {
				// Never answer an answer: log it; the pending call times out.
				cn.csms.log.Warn("ocpp: bad answer frame", "station", cn.station, "err", err)
				continue
			}
			cn.csms.log.Warn("ocpp: bad frame", "station", cn.station, "err", err)
			cn.reply(EncodeCallError(rpc))
			continue
		}
		switch f.Type {
		case TypeCall:
			cn.handleCall(f)
		case TypeCallResult, TypeCallError:
			cn.mu.Lock()
			ch := cn.pending[f.ID]
			delete(cn.pending, f.ID)
			cn.mu.Unlock()
			if ch == nil {
				cn.csms.log.Warn("ocpp: answer to no pending call", "station", cn.station, "id", trimID(f.ID))
				continue
			}
			ch <- f
		}
	}
}

func (cn *Conn) reply(data []byte) {
	if err := cn.write(data); err != nil {
		cn.csms.log.Info("ocpp: write", "station", cn.station, "err", err)
	}
}

// handleCall answers one CALL of the station. Nothing is stored for a
// CALL that is refused.
func (cn *Conn) handleCall(f *Frame) {
	c := cn.csms
	fail := func(code, format string, args ...any) {
		e := &RPCError{ID: f.ID, Code: code, Description: fmt.Sprintf(format, args...)}
		c.log.Warn("ocpp: call refused", "station", cn.station, "action", trimID(f.Action), "code", code, "why", e.Description)
		cn.reply(EncodeCallError(e))
	}
	c.mu.Lock()
	st := c.stations[cn.station]
	dup := st.ids[f.ID]
	if !dup {
		st.ids[f.ID] = true
		st.order = append(st.order, f.ID)
		if len(st.order) > recentIDs {
			delete(st.ids, st.order[0])
			st.order = st.order[1:]
		}
	}
	c.mu.Unlock()
	if dup {
		fail(ErrRPCFrameworkError, "message id %q was already used by this station: every CALL needs a new unique id (OCPP-J 4.1.4); nothing was done", trimID(f.ID))
		return
	}
	h, ok := stationCalls[f.Action]
	if !ok {
		fail(ErrNotImplemented, "action %q is not implemented by this CSMS; a charging station may send %s", trimID(f.Action), strings.Join(stationActions(), ", "))
		return
	}
	if err := ValidateVersion(cn.proto, f.Action, false, f.Payload); err != nil {
		var rpc *RPCError
		errors.As(err, &rpc)
		fail(rpc.Code, "%s", rpc.Description)
		return
	}
	resp, after, rerr := h(cn, f.Payload)
	if rerr != nil {
		fail(rerr.Code, "%s", rerr.Description)
		return
	}
	data, err := json.Marshal(resp)
	if err == nil {
		err = ValidateVersion(cn.proto, f.Action, true, data)
	}
	if err != nil {
		fail(ErrInternalError, "the CSMS built an invalid %s response: %v", f.Action, err)
		return
	}
	out, _ := EncodeCallResult(f.ID, json.RawMessage(data))
	cn.reply(out)
	if after != nil {
		c.wg.Add(1)
		go func() {
			defer c.wg.Done()
			after()
		}()
	}
}

// Call sends a CALL and waits for its answer (at most CallTimeout).
func (cn *Conn) Call(ctx context.Context, action string, req, resp any) error {
	data, err := json.Marshal(req)
	if err != nil {
		return fmt.Errorf("ocpp: %s: %w", action, err)
	}
	if err := ValidateVersion(cn.proto, action, false, data); err != nil {
		return fmt.Errorf("ocpp: refusing to send an invalid %s: %w", action, err)
	}
	cn.callMu.Lock()
	defer cn.callMu.Unlock()
	var idb [16]byte
	if _, err := rand.Read(idb[:]); err != nil {
		return err
	}
	id := hex.EncodeToString(idb[:])
	ch := make(chan *Frame, 1)
	cn.mu.Lock()
	cn.pending[id] = ch
	cn.mu.Unlock()
	defer func() {
		cn.mu.Lock()
		delete(cn.pending, id)
		cn.mu.Unlock()
	}()
	frame, _ := EncodeCall(id, action, json.RawMessage(data))
	if err := cn.write(frame); err != nil {
		return fmt.Errorf("ocpp: %s to %s: %w", action, cn.station, err)
	}
	timer := time.NewTimer(cn.csms.opts.CallTimeout)
	defer timer.Stop()
	var f *Frame
	select {
	case f = <-ch:
	case <-ctx.Done():
		return fmt.Errorf("ocpp: %s to %s: %w", action, cn.station, ctx.Err())
	case <-timer.C:
		return fmt.Errorf("ocpp: %s to %s: no answer within %s", action, cn.station, cn.csms.opts.CallTimeout)
	case <-cn.done:
		return fmt.Errorf("ocpp: %s to %s: %w", action, cn.station, errClosed)
	}
	if f.Type == TypeCallError {
		return &RPCError{ID: f.ID, Code: f.ErrorCode, Description: f.ErrorDescription}
	}
	if err := ValidateVersion(cn.proto, action, true, f.Payload); err != nil {
		return fmt.Errorf("ocpp: %s's answer from %s: %w", action, cn.station, err)
	}
	if resp != nil {
		if err := json.Unmarshal(f.Payload, resp); err != nil {
			return fmt.Errorf("ocpp: %s's answer from %s: %w", action, cn.station, err)
		}
	}
	return nil
}
