package authnet

import (
	"context"
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"runtime"
	"sync"
	"time"

	"github.com/flynn/noise"

	"github.com/gridveil/gridveil/auth"
	"github.com/gridveil/gridveil/auth/wire"
)

// ErrNoCredential is a first enrolment attempted without an enrolment
// credential: the operator issues one with gridveil ca issue.
var ErrNoCredential = errors.New("the operator issues one with gridveil ca issue (at the CA) and gives it to this party")

// LAGEnrolled reports whether a LAG's data directory holds a certificate,
// so that the LAG starts without an enrolment credential.
func LAGEnrolled(store *Store) bool { return store.Exists(lagCertFile) }

// LAGOptions configure a LAG server.
type LAGOptions struct {
	ID     string // the LAG's identifier, certified by the CA
	Group  string // the utility it belongs to (home network of that group's vehicles)
	CAAddr string
	CA     auth.CAPublic
	// Token is the LAG's enrolment credential (issued for its ID by the
	// operator: gridveil ca issue lag ID), or the shared token at a CA
	// that still accepts it; needed until the LAG is certified.
	Token [32]byte
	// Schemes offered, in order of preference (default: both).
	Schemes []auth.Scheme
	// BatchWindow is how long the LAG gathers authentication requests
	// before verifying them together; default 5 ms.
	BatchWindow time.Duration
	// ConfirmEvery is the period of batch confirmations; default 500 ms.
	ConfirmEvery time.Duration
	// MaxConns bounds simultaneous vehicle connections; default 4096.
	MaxConns int
	// IdleTimeout drops a vehicle, or the CA link, that sent nothing for
	// so long (keepalives count); default IdleTimeout.
	IdleTimeout time.Duration
	// KeepaliveEvery is how often the LAG sends a keepalive on its CA
	// link, which the CA answers; default KeepaliveEvery.
	KeepaliveEvery time.Duration
	// Limits bound what vehicles that have not authenticated yet can make
	// the LAG hold; zero fields take DefaultLimits.
	Limits Limits
}

// LAGServer serves the LAG core: vehicles over TCP, and a link to the CA.
// One goroutine reads each vehicle's connection; the core's state is
// under one lock, taken only around the cheap steps of a frame (Begin,
// Finish) and of a batch (TakeBatch, ApplyBatch), so that handshakes,
// decryption and signature checks of different vehicles run on all cores.
type LAGServer struct {
	mu      sync.Mutex
	lag     *auth.LAG
	opts    LAGOptions
	peers   map[auth.ConnID]*peer
	link    *peer
	kick    chan struct{}
	linked  chan struct{}
	onEvent EventFunc
	log     *slog.Logger
	guard   *guard
}

// Files of a LAG's data directory.
const (
	lagKeyFile  = "lag.key"
	lagCertFile = "cert"
)

// LAGFiles are the files a LAG's start writes to its data directory, its
// bound address (addr) last: a first start that fails may remove them
// from a directory it created.
var LAGFiles = []string{lagKeyFile, lagCertFile, EvidenceFile, "addr"}

// OpenLAG loads the LAG's keys and certificate from its data directory,
// creating keys and enrolling with the CA (over TCP, with the token) when
// there is no valid certificate.
func OpenLAG(ctx context.Context, store *Store, opts LAGOptions, log *slog.Logger, onEvent EventFunc) (*LAGServer, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if opts.BatchWindow == 0 {
		opts.BatchWindow = 5 * time.Millisecond
	}
	if opts.ConfirmEvery == 0 {
		opts.ConfirmEvery = 500 * time.Millisecond
	}
	if opts.MaxConns == 0 {
		opts.MaxConns = 4096
	}
	if opts.IdleTimeout == 0 {
		opts.IdleTimeout = IdleTimeout
	}
	if opts.KeepaliveEvery == 0 {
		opts.KeepaliveEvery = KeepaliveEvery
	}
	nk, sk, tk, err := loadOrCreateLAGKeys(store)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	var cert *auth.LAGCert
	if b, err := store.Read(lagCertFile); err == nil {
		c, err := auth.ParseLAGCert(b)
		if err == nil && c.Verify(opts.CA, now.Add(24*time.Hour)) == nil && c.LAGID == opts.ID && c.Group == opts.Group &&
			c.NoiseKey == [32]byte(nk.Public) {
			cert = c
		}
	} else if !isNotExist(err) {
		return nil, err
	}
	if cert == nil {
		if opts.Token == ([32]byte{}) && !store.Exists(lagCertFile) {
			return nil, fmt.Errorf("LAG %q is not enrolled and has no enrolment credential: %w", opts.ID, ErrNoCredential)
		}
		e, first, err := auth.EnrolLAG(opts.CA, opts.Token, opts.ID, opts.Group, nk, sk)
		if err != nil {
			return nil, err
		}
		if err := RunEnrolment(ctx, opts.CAAddr, e.Enrolment, first); err != nil {
			return nil, fmt.Errorf("enrolling LAG %q with the CA at %s: %w", opts.ID, opts.CAAddr, err)
		}
		cert = e.Cert
		if err := store.Write(lagCertFile, cert.Marshal(), 0o644); err != nil {
			return nil, err
		}
		log.Info("enrolled with the CA", "lag", opts.ID, "serial", cert.Serial)
	}
	l, err := auth.NewLAG(auth.LAGConfig{Cert: *cert, NoiseKey: nk, SignKey: sk, CA: opts.CA, Schemes: opts.Schemes, TicketKey: tk}, now)
	if err != nil {
		return nil, err
	}
	return &LAGServer{lag: l, opts: opts, peers: map[auth.ConnID]*peer{}, kick: make(chan struct{}, 1),
		linked: make(chan struct{}), onEvent: onEvent, log: log, guard: newGuard(opts.Limits, log)}, nil
}

func loadOrCreateLAGKeys(store *Store) (noise.DHKey, ed25519.PrivateKey, [32]byte, error) {
	var tk [32]byte
	b, err := store.Read(lagKeyFile)
	if isNotExist(err) {
		b = make([]byte, 96)
		if _, err := rand.Read(b); err != nil {
			return noise.DHKey{}, nil, tk, err
		}
		if err := store.Write(lagKeyFile, b, 0o600); err != nil {
			return noise.DHKey{}, nil, tk, err
		}
	} else if err != nil {
		return noise.DHKey{}, nil, tk, err
	}
	if len(b) != 96 {
		return noise.DHKey{}, nil, tk, fmt.Errorf("%s: %d bytes, want 96", lagKeyFile, len(b))
	}
	// X25519 clamps any 32 bytes, so a random key is a valid key.
	ek, err := ecdh.X25519().NewPrivateKey(b[:32])
	if err != nil {
		return noise.DHKey{}, nil, tk, err
	}
	nk := noise.DHKey{Private: ek.Bytes(), Public: ek.PublicKey().Bytes()}
	copy(tk[:], b[64:])
	return nk, ed25519.NewKeyFromSeed(b[32:64]), tk, nil
}

// ID is the LAG's identifier.
func (s *LAGServer) ID() string { return s.opts.ID }

// Linked is closed once the LAG first synchronised with the CA.
func (s *LAGServer) Linked() <-chan struct{} { return s.linked }

// Do runs f on the LAG core under its lock and sends what f returns.
func (s *LAGServer) Do(f func(now time.Time, l *auth.LAG) auth.Output) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.dispatch(f(time.Now(), s.lag))
}

// Serve accepts vehicles on ln and keeps the CA link up until ctx ends.
func (s *LAGServer) Serve(ctx context.Context, ln net.Listener) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		<-ctx.Done()
		ln.Close()
	}()
	var wg sync.WaitGroup
	wg.Add(3)
	go func() { defer wg.Done(); s.linkLoop(ctx) }()
	go func() { defer wg.Done(); s.flusher(ctx) }()
	go func() { defer wg.Done(); s.ticker(ctx) }()
	defer func() {
		// The CA hears of every session's end before the link closes, so
		// that none of these vehicles is taken for a clone at its next
		// session (a LAG that dies without this is reconciled when it
		// links again: CA.confirmLink).
		s.mu.Lock()
		for id, p := range s.peers {
			s.dispatch(s.lag.Close(id))
			p.close()
		}
		link := s.link
		if link != nil {
			link.closeAfter()
		}
		s.mu.Unlock()
		if link != nil {
			select {
			case <-link.done:
			case <-time.After(writeTimeout):
			}
		}
		cancel()
		wg.Wait()
	}()
	for {
		c, err := accept(ctx, ln)
		if err != nil || c == nil {
			return err
		}
		s.mu.Lock()
		if len(s.peers) >= s.opts.MaxConns {
			n := len(s.peers)
			s.mu.Unlock()
			s.log.Warn("vehicle refused: at capacity", "from", c.RemoteAddr(), "conns", n, "max", s.opts.MaxConns)
			c.Close()
			continue
		}
		id, out, err := s.lag.Open(time.Now())
		if err != nil {
			s.mu.Unlock()
			s.log.Warn("vehicle refused", "from", c.RemoteAddr(), "reason", err)
			_ = c.SetWriteDeadline(time.Now().Add(time.Second))
			_ = wire.WriteFrame(c, auth.RejectFrame(err))
			c.Close()
			continue
		}
		s.mu.Unlock()
		e, err := s.guard.admit(c, func() bool {
			s.mu.Lock()
			defer s.mu.Unlock()
			return s.lag.Authenticated(id)
		})
		s.mu.Lock()
		if err != nil {
			s.lag.Close(id) // the CA never heard of it: nothing to tell
			s.mu.Unlock()
			c.Close()
			continue
		}
		p := newPeer(c)
		s.peers[id] = p
		s.dispatch(out)
		s.mu.Unlock()
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.serveVehicle(id, p, e)
		}()
	}
}

func (s *LAGServer) serveVehicle(id auth.ConnID, p *peer, e *guarded) {
	defer func() {
		e.release()
		s.mu.Lock()
		s.dispatch(s.lag.Close(id))
		delete(s.peers, id)
		s.mu.Unlock()
		p.drainAndClose()
	}()
	for {
		_ = p.conn.SetReadDeadline(time.Now().Add(s.opts.IdleTimeout))
		f, done, err := e.readFrame(p.conn, maxVehicleFrame)
		if err != nil {
			if !isClosing(err) {
				s.log.Warn("vehicle connection dropped", "conn", id, "from", p.conn.RemoteAddr(), "reason", err)
			}
			return
		}
		if isKeepalive(f) {
			done()
			continue
		}
		// The frame's cryptography (handshake DHs, decryption, signature
		// checks) runs between the two locked steps, so the connections'
		// goroutines use every core.
		s.mu.Lock()
		st := s.lag.Begin(time.Now(), id, f)
		s.mu.Unlock()
		st.Run()
		s.mu.Lock()
		out, err := s.lag.Finish(st)
		s.dispatch(out)
		pending := s.lag.Pending()
		authed := err == nil && s.lag.Authenticated(id)
		s.mu.Unlock()
		done()
		if err != nil {
			s.log.Warn("vehicle refused", "conn", id, "from", p.conn.RemoteAddr(), "reason", err)
			return
		}
		if authed {
			e.promote()
		}
		if pending > 0 {
			select {
			case s.kick <- struct{}{}:
			default:
			}
		}
	}
}

// flusher verifies gathered authentication requests: it waits for the
// first, lets BatchWindow pass to gather more, and verifies them together.
func (s *LAGServer) flusher(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.kick:
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(s.opts.BatchWindow):
		}
		s.flush()
	}
}

// flush verifies the gathered authentication requests without the lock,
// in one part per core, while the vehicles' goroutines go on.
func (s *LAGServer) flush() {
	s.mu.Lock()
	b := s.lag.TakeBatch()
	s.mu.Unlock()
	start := time.Now() // events.go: the batch's verification time
	parts := min(runtime.GOMAXPROCS(0), max(1, b.Len()/minPart))
	var wg sync.WaitGroup
	for i := range parts {
		wg.Go(func() { b.VerifyPart(i, parts) })
	}
	wg.Wait()
	s.noteBatch(b.Len(), time.Since(start))
	s.mu.Lock()
	s.dispatch(s.lag.ApplyBatch(time.Now(), b))
	s.mu.Unlock()
}

// minPart is the fewest requests worth a part of their own: below it a
// part's fixed costs (a goroutine; the batch equation's terms for the base
// point and the CA's key) become a noticeable share of its time.
const minPart = 16

func (s *LAGServer) ticker(ctx context.Context) {
	confirm := time.NewTicker(s.opts.ConfirmEvery)
	tick := time.NewTicker(30 * time.Second)
	defer confirm.Stop()
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-confirm.C:
			s.mu.Lock()
			s.dispatch(s.lag.ConfirmBatch(time.Now()))
			s.mu.Unlock()
		case <-tick.C:
			s.mu.Lock()
			s.dispatch(s.lag.Tick(time.Now()))
			s.mu.Unlock()
		}
	}
}

// linkLoop keeps the link to the CA up, reconnecting with back-off.
func (s *LAGServer) linkLoop(ctx context.Context) {
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		err := s.runLink(ctx)
		if ctx.Err() != nil {
			return
		}
		s.log.Warn("CA link down", "err", err, "retry_in", backoff)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

func (s *LAGServer) runLink(ctx context.Context) error {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", s.opts.CAAddr)
	if err != nil {
		return err
	}
	p := newPeer(c)
	s.mu.Lock()
	first, err := s.lag.ConnectCA()
	if err != nil {
		s.mu.Unlock()
		p.close()
		return err
	}
	s.link = p
	p.send(first)
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		if s.link == p {
			s.link = nil
			s.dispatch(s.lag.CADisconnected())
		}
		s.mu.Unlock()
		p.close()
	}()
	go func() {
		t := time.NewTicker(s.opts.KeepaliveEvery)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				p.close()
				return
			case <-p.done:
				return
			case <-t.C:
				p.send(keepaliveFrame)
			}
		}
	}()
	for {
		// The CA answers each keepalive: a link silent for IdleTimeout is
		// dead, and is dialled again.
		_ = c.SetReadDeadline(time.Now().Add(s.opts.IdleTimeout))
		f, err := wire.ReadFrame(c, maxLinkFrame)
		if err != nil {
			return err
		}
		if isKeepalive(f) {
			continue
		}
		s.mu.Lock()
		out, err := s.lag.ReceiveCA(time.Now(), f)
		s.dispatch(out)
		linked := s.lag.Linked()
		s.mu.Unlock()
		if err != nil {
			return err
		}
		if linked {
			select {
			case <-s.linked:
			default:
				close(s.linked)
			}
		}
	}
}

// dispatch sends an output's frames and reports its events. Callers hold mu.
func (s *LAGServer) dispatch(out auth.Output) {
	for _, f := range out.Frames {
		if f.To == auth.ToCA {
			if s.link != nil {
				s.link.send(f.Data)
			}
			continue
		}
		if p := s.peers[f.To]; p != nil {
			p.send(f.Data)
		}
	}
	for _, id := range out.Close {
		if p := s.peers[id]; p != nil {
			p.closeAfter()
		}
	}
	for _, e := range out.Events {
		if s.onEvent != nil {
			s.onEvent(e)
		}
		if e.Err != nil { // a refusal or a dropped message: visible at the default level
			s.log.Warn("lag refused", "kind", e.Kind, "conn", e.Conn, "reason", e.Err)
		} else {
			s.log.Debug("lag event", "event", e.String())
		}
	}
}

// RunEnrolment carries an enrolment exchange with the CA at addr.
func RunEnrolment(ctx context.Context, addr string, e *auth.Enrolment, first []byte) error {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = c.SetDeadline(dl)
	} else {
		_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	}
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	if err := wire.WriteFrame(c, first); err != nil {
		return err
	}
	for !e.Done() {
		f, err := wire.ReadFrame(c, maxLinkFrame)
		if err != nil {
			return err
		}
		next, err := e.Receive(f)
		if err != nil {
			return err
		}
		if next != nil {
			if err := wire.WriteFrame(c, next); err != nil {
				return err
			}
		}
	}
	return nil
}
