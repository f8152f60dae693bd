package auth

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"time"

	"filippo.io/edwards25519"
	"github.com/flynn/noise"

	"github.com/gridveil/gridveil/auth/lsag"
	"github.com/gridveil/gridveil/auth/pseudonym"
	"github.com/gridveil/gridveil/auth/wire"
)

type pseudoCred struct {
	cert *pseudonym.Cert
	key  ed25519.PrivateKey
}

// sessCred is the credential a vehicle signs with in one session.
type sessCred struct {
	scheme  Scheme
	pseudo  *pseudoCred
	ring    *lsag.Ring
	members []uint32
	index   int
	base    *edwards25519.Point
	epoch   int64
	group   string
}

type ticketRec struct {
	ticket []byte
	secret [32]byte
	cred   *sessCred
}

// BV is a battery vehicle's credentials: its identity key (for enrolment),
// its LSAG key, its unused pseudonym certificates, its group's key list and
// its resumption tickets. Sessions are made with NewSession. It is not safe
// for concurrent use.
type BV struct {
	RealID   string
	Group    string
	ca       CAPublic
	identity ed25519.PrivateKey
	ringKey  *lsag.PrivateKey
	pseudo   []*pseudoCred
	group    *GroupList
	// chain is the hash chain of group (groupHead), once computed: a
	// refill extends it by the keys it brings instead of hashing the
	// whole list again.
	chain     *[32]byte
	ringIndex uint32
	tickets   map[string]*ticketRec
}

// NewBV creates a vehicle with fresh keys from crypto/rand.
func NewBV(realID, group string, ca CAPublic) (*BV, error) {
	if err := checkID("identity", realID); err != nil {
		return nil, err
	}
	if err := checkID("group", group); err != nil {
		return nil, err
	}
	_, id, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	rk, err := lsag.GenerateKey()
	if err != nil {
		return nil, err
	}
	return &BV{RealID: realID, Group: group, ca: ca, identity: id, ringKey: rk, tickets: map[string]*ticketRec{}}, nil
}

// Pseudonyms is the number of unused pseudonym certificates.
func (b *BV) Pseudonyms() int { return len(b.pseudo) }

// UsablePseudonyms is the number of unused pseudonym certificates valid at
// now. Pseudonyms are valid for the CA's period in which they were issued
// (CAConfig.PseudonymLifetime), so a vehicle refills when this runs low.
func (b *BV) UsablePseudonyms(now time.Time) int {
	k := 0
	for _, p := range b.pseudo {
		if p.cert.CheckValidity(now) == nil {
			k++
		}
	}
	return k
}

// GroupSize is the number of members in the vehicle's copy of its group's
// key list (0 before enrolment).
func (b *BV) GroupSize() int {
	if b.group == nil {
		return 0
	}
	return len(b.group.Keys)
}

// Enrolled reports whether the vehicle was enrolled: it holds its group's
// key list from the CA, so the CA knows its identity key and refills need
// no enrolment credential.
func (b *BV) Enrolled() bool { return b.group != nil }

// HasTicket reports whether the vehicle holds a resumption ticket for a LAG.
func (b *BV) HasTicket(lagID string) bool { return b.tickets[lagID] != nil }

// Enrolment is a client's exchange with the CA over a Noise NK channel
// (the CA's static key is known): enrolment of a vehicle or a LAG.
type Enrolment struct {
	ch      *channel
	request func(binding [32]byte) (message, error)
	// handle takes each message of the CA's answer and reports whether
	// it was the last.
	handle func(message) (bool, error)
	sent   bool
	done   bool
}

func newEnrolment(ca CAPublic, request func([32]byte) (message, error), handle func(message) (bool, error)) (*Enrolment, []byte, error) {
	ch, err := newChannel(noise.HandshakeNK, true, []byte(prologueEnrol), staticKey{}, ca.NoiseKey[:])
	if err != nil {
		return nil, nil, err
	}
	msg, err := ch.write(nil)
	if err != nil {
		return nil, nil, err
	}
	return &Enrolment{ch: ch, request: request, handle: handle}, append([]byte{frameEnrol}, msg...), nil
}

// Done reports whether the enrolment succeeded.
func (e *Enrolment) Done() bool { return e.done }

// Receive consumes a frame from the CA and returns the next frame to send
// (nil when there is none).
func (e *Enrolment) Receive(frame []byte) ([]byte, error) {
	if len(frame) == 0 {
		return nil, fmt.Errorf("%w: empty frame", ErrMalformed)
	}
	switch {
	case frame[0] == frameReject && len(frame) == 2:
		return nil, &RejectedError{By: "ca", Reason: errOf(frame[1])}
	case frame[0] == frameHS2 && !e.sent:
		if _, err := e.ch.read(frame[1:]); err != nil {
			return nil, err
		}
		m, err := e.request(e.ch.binding)
		if err != nil {
			return nil, err
		}
		e.sent = true
		return e.ch.seal(encode(m))
	case frame[0] == frameData && e.sent && !e.done:
		pt, err := e.ch.open(frame[1:])
		if err != nil {
			return nil, err
		}
		m, err := parseAny(pt)
		if err != nil {
			return nil, err
		}
		if r, ok := m.(*rejectMsg); ok {
			return nil, &RejectedError{By: "ca", Reason: errOf(r.Code)}
		}
		last, err := e.handle(m)
		if err != nil {
			return nil, err
		}
		e.done = last
		return nil, nil
	}
	return nil, fmt.Errorf("%w: enrolment frame type %d", ErrState, frame[0])
}

// Enrol starts the vehicle's enrolment (or a refill: the same vehicle asks
// for more pseudonyms and a fresh group list) with n new pseudonym keys.
// token is the vehicle's enrolment credential, issued for its RealID by
// the operator (CA.IssueCredential) and given out of band; a refill of an
// enrolled vehicle may pass zeros.
func (b *BV) Enrol(token [32]byte, n int) (*Enrolment, []byte, error) {
	if n < 0 || n > maxPseudo {
		return nil, nil, fmt.Errorf("pseudonyms per enrolment: 0..%d", maxPseudo)
	}
	keys := make([]ed25519.PrivateKey, n)
	for i := range keys {
		var err error
		if _, keys[i], err = ed25519.GenerateKey(rand.Reader); err != nil {
			return nil, nil, err
		}
	}
	// The vehicle holds the first keys of its group's list: the CA sends
	// the rest, and the head that signs the whole list.
	var have [][32]byte
	if b.group != nil && b.group.Group == b.Group {
		have = b.group.Keys
	}
	fresh := slices.Clone(have)
	kept := len(have) // how many of have no chunk replaced
	req := func(binding [32]byte) (message, error) {
		m := &enrolBVMsg{Token: token, RealID: b.RealID, Group: b.Group, RingKey: b.ringKey.Public(), HaveKeys: uint32(len(have))}
		copy(m.IdentityKey[:], b.identity.Public().(ed25519.PublicKey))
		for _, k := range keys {
			m.PseudoKeys = append(m.PseudoKeys, [32]byte(k.Public().(ed25519.PublicKey)))
		}
		m.Sig = sign(b.identity, domEnrol, append(binding[:], m.body()...))
		return m, nil
	}
	handle := func(m message) (bool, error) {
		if ch, isChunk := m.(*groupKeysMsg); isChunk {
			if ch.Group != b.Group || int(ch.From) > len(fresh) || len(fresh)+len(ch.Keys) > maxList {
				return false, fmt.Errorf("%w: group list chunk from %d, the vehicle holds %d", ErrMalformed, ch.From, len(fresh))
			}
			fresh = append(fresh[:ch.From], ch.Keys...)
			kept = min(kept, int(ch.From))
			return false, nil
		}
		ok, isOK := m.(*enrolBVOKMsg)
		if !isOK || len(ok.Certs) != len(keys) {
			return false, fmt.Errorf("%w: enrolment reply", ErrMalformed)
		}
		h, err := parseGroupHead(ok.Head)
		if err != nil {
			return false, err
		}
		gl := &GroupList{Group: h.Group, Version: h.Version, Keys: fresh, Revoked: h.Revoked, Sig: h.Sig}
		var chain [32]byte
		if b.chain != nil && kept == len(have) && len(have) > 0 && len(fresh) >= len(have) {
			chain = *b.chain // of have, which fresh extends
			for _, k := range fresh[len(have):] {
				chain = groupChainNext(chain, k)
			}
		} else {
			chain = groupChain(b.Group, fresh)
		}
		if int(h.Count) != len(gl.Keys) || h.Chain != chain || !verify(b.ca.sign(), domGroup, h.body(), h.Sig) || gl.Group != b.Group ||
			int64(ok.RingIndex) >= int64(len(gl.Keys)) || gl.Keys[ok.RingIndex] != b.ringKey.Public() {
			return false, fmt.Errorf("%w: group list", ErrUntrusted)
		}
		var certs []*pseudoCred
		for i, cb := range ok.Certs {
			c, err := pseudonym.ParseCert(cb)
			if err != nil {
				return false, fmt.Errorf("%w: %w", ErrMalformed, err)
			}
			if c.CheckSignature(b.ca.sign()) != nil || c.Key != [32]byte(keys[i].Public().(ed25519.PublicKey)) || c.Group != b.Group {
				return false, fmt.Errorf("%w: pseudonym certificate %d", ErrUntrusted, i)
			}
			certs = append(certs, &pseudoCred{cert: c, key: keys[i]})
		}
		if b.group == nil || gl.Version >= b.group.Version {
			b.group, b.ringIndex, b.chain = gl, ok.RingIndex, &chain
		}
		b.pseudo = append(b.pseudo, certs...)
		return true, nil
	}
	return newEnrolment(b.ca, req, handle)
}

// LAGEnrolment enrols a LAG: the CA certifies its static Noise key and its
// batch-signing key under lagID and group. After Done, Cert holds the
// certificate.
type LAGEnrolment struct {
	*Enrolment
	Cert *LAGCert
}

// EnrolLAG starts a LAG's enrolment with the CA's token.
func EnrolLAG(ca CAPublic, token [32]byte, lagID, group string, noiseKey noise.DHKey, signKey ed25519.PrivateKey) (*LAGEnrolment, []byte, error) {
	le := &LAGEnrolment{}
	req := func(binding [32]byte) (message, error) {
		m := &enrolLAGMsg{Token: token, LAGID: lagID, Group: group, NoiseKey: [32]byte(noiseKey.Public), SignKey: [32]byte(signKey.Public().(ed25519.PublicKey))}
		m.Sig = sign(signKey, domEnrol, append(binding[:], m.body()...))
		return m, nil
	}
	handle := func(m message) (bool, error) {
		ok, isOK := m.(*enrolLAGOKMsg)
		if !isOK {
			return false, fmt.Errorf("%w: enrolment reply", ErrMalformed)
		}
		c, err := ParseLAGCert(ok.Cert)
		if err != nil {
			return false, err
		}
		if !verify(ca.sign(), domLAGCert, c.body(), c.Sig) || c.LAGID != lagID || c.NoiseKey != [32]byte(noiseKey.Public) {
			return false, fmt.Errorf("%w: LAG certificate", ErrUntrusted)
		}
		le.Cert = c
		return true, nil
	}
	e, first, err := newEnrolment(ca, req, handle)
	le.Enrolment = e
	return le, first, err
}

// SessionOptions are a vehicle's choices for one session.
type SessionOptions struct {
	Role Role
	// Schemes the vehicle accepts, in order of preference (default
	// pseudonym, then LSAG). A LAG offering none of them is refused as a
	// downgrade.
	Schemes []Scheme
	// Resume uses a resumption ticket when the vehicle holds one for the
	// LAG and the LAG offers resumption.
	Resume bool
	// RingSize is the LSAG anonymity set (default 16; at most MaxRingSize).
	RingSize int
	// MinRingSize is the smallest ring the vehicle accepts to sign with
	// (default 2): a ring of one would make its key a stable identifier.
	// A vehicle whose copy of the group list is too small refreshes it
	// (Enrol with no new pseudonyms).
	MinRingSize int
	// WillDischarge: agree to discharge requests when fully charged.
	WillDischarge bool
	// ExpectLAG, if set, is the LAG identifier the vehicle expects (printed
	// on the charger); another certified LAG is refused.
	ExpectLAG string
}

// BVState is a vehicle session's state (seed 002's battery states).
type BVState uint8

// Vehicle session states.
const (
	BVConnecting BVState = iota
	BVAwaitPermit
	BVCharging
	BVFullyCharged
	BVDischarging
	BVClosed
)

func (s BVState) String() string {
	return [...]string{"connecting", "awaiting-permit", "charging", "fully-charged", "discharging", "closed"}[s]
}

// BVView is what a vehicle learned in a session.
type BVView struct {
	LAGID          string
	LAGGroup       string
	Home           bool
	Service        Service
	Scheme         Scheme
	Resumed        bool
	BatchConfirmed bool
	BatchSize      uint32
	Requests       int      // discharge requests received
	Acks           []string // the CA's sealed replies to answers, opened
	StatusReplies  int      // status reports the CA answered
	SOCPermille    int64    // the CA's confirmation of the last status
	BilledWh       int64    // energy billed so far, per the CA
	V2VWh          int64    // energy received from the station's discharge pool
}

type pendingAnswer struct {
	key      [32]byte
	decision Decision
}

type pendingStatus struct {
	key  [32]byte
	kind StatusKind
}

// BVSession is a vehicle's side of one session with a LAG.
type BVSession struct {
	b         *BV
	opts      SessionOptions
	state     BVState
	cert      LAGCert
	ch        *channel
	choice    choice
	challenge [32]byte
	cred      *sessCred
	ticket    *ticketRec
	kept      *ticketRec // the ticket this session got, dropped if the session is refused
	opKey     [32]byte
	permit    *Permit
	battery   Battery
	statusSeq uint32
	statuses  map[uint32]pendingStatus
	requests  map[[16]byte]*DischargeRequest
	answers   map[[16]byte][]pendingAnswer // answers awaiting the CA's ack
	decided   map[[16]byte]Decision        // the latest answer to each request
	view      BVView
}

// NewSession starts a session; the vehicle waits for the LAG's hello.
func (b *BV) NewSession(opts SessionOptions) *BVSession {
	if len(opts.Schemes) == 0 {
		opts.Schemes = []Scheme{SchemePseudonym, SchemeLSAG}
	}
	if opts.RingSize <= 0 {
		opts.RingSize = 16
	}
	opts.RingSize = min(opts.RingSize, MaxRingSize)
	if opts.MinRingSize <= 0 {
		opts.MinRingSize = min(2, opts.RingSize)
	}
	if !opts.Role.valid() {
		opts.Role = RoleLoad
	}
	return &BVSession{b: b, opts: opts, statuses: map[uint32]pendingStatus{}, requests: map[[16]byte]*DischargeRequest{},
		answers: map[[16]byte][]pendingAnswer{}, decided: map[[16]byte]Decision{}}
}

// State is the session's state.
func (s *BVSession) State() BVState { return s.state }

// Resuming reports whether the session chose resumption with a ticket.
func (s *BVSession) Resuming() bool { return s.choice.Resume }

// View is what the vehicle learned.
func (s *BVSession) View() BVView { return s.view }

// Binding is the session's channel binding (zero before the handshake).
func (s *BVSession) Binding() [32]byte {
	if s.ch == nil {
		return [32]byte{}
	}
	return s.ch.binding
}

// SetBattery sets the battery state the vehicle reports next.
func (s *BVSession) SetBattery(b Battery) { s.battery = b }

// Receive consumes one frame from the LAG and returns the frames to send
// back. An error ends the session.
func (s *BVSession) Receive(now time.Time, frame []byte) ([][]byte, error) {
	out, err := s.receive(now, frame)
	if err != nil {
		s.state = BVClosed
	}
	return out, err
}

func (s *BVSession) receive(now time.Time, frame []byte) ([][]byte, error) {
	if s.state == BVClosed {
		return nil, fmt.Errorf("%w: session closed", ErrState)
	}
	if len(frame) == 0 {
		return nil, fmt.Errorf("%w: empty frame", ErrMalformed)
	}
	switch frame[0] {
	case frameReject:
		if len(frame) != 2 {
			return nil, fmt.Errorf("%w: reject frame", ErrMalformed)
		}
		return nil, &RejectedError{By: "lag", Reason: errOf(frame[1])}
	case frameHello:
		if s.ch != nil {
			return nil, fmt.Errorf("%w: second hello", ErrState)
		}
		return s.hello(now, frame)
	case frameHS2:
		if s.ch == nil || s.ch.enc != nil {
			return nil, fmt.Errorf("%w: handshake message", ErrState)
		}
		payload, err := s.ch.read(frame[1:])
		if err != nil {
			return nil, err
		}
		if len(payload) != 32 {
			return nil, fmt.Errorf("%w: challenge of %d bytes", ErrMalformed, len(payload))
		}
		copy(s.challenge[:], payload)
		return s.authenticate(now)
	case frameData:
		if s.ch == nil || !s.ch.ready() {
			return nil, fmt.Errorf("%w: data before the handshake", ErrState)
		}
		pt, err := s.ch.open(frame[1:])
		if err != nil {
			return nil, err
		}
		m, err := parseAny(pt)
		if err != nil {
			return nil, err
		}
		return s.message(now, m)
	}
	return nil, fmt.Errorf("%w: frame type %d", ErrState, frame[0])
}

// hello checks the LAG's certificate and offer, picks a scheme, and starts
// the Noise NK handshake to the certified static key.
func (s *BVSession) hello(now time.Time, frame []byte) ([][]byte, error) {
	var h hello
	if err := decode(frame, &h); err != nil {
		return nil, err
	}
	if h.Version != ProtocolVersion {
		return nil, fmt.Errorf("%w: LAG speaks version %d", ErrDowngrade, h.Version)
	}
	if err := h.Cert.Verify(s.b.ca, now); err != nil {
		return nil, err
	}
	if s.opts.ExpectLAG != "" && h.Cert.LAGID != s.opts.ExpectLAG {
		return nil, fmt.Errorf("%w: LAG %q, expected %q", ErrUntrusted, h.Cert.LAGID, s.opts.ExpectLAG)
	}
	s.cert = h.Cert
	s.choice = choice{Version: ProtocolVersion}
	if t := s.b.tickets[h.Cert.LAGID]; s.opts.Resume && h.Resume && t != nil && slices.Contains(h.Schemes, t.cred.scheme) {
		s.choice.Scheme, s.choice.Resume, s.ticket = t.cred.scheme, true, t
	} else {
		var common bool
		var lastErr error
		for _, sc := range s.opts.Schemes {
			if !slices.Contains(h.Schemes, sc) {
				continue
			}
			common = true
			c, err := s.b.credential(now, sc, &h, s.opts.RingSize, s.opts.MinRingSize)
			if err != nil {
				lastErr = err
				continue
			}
			s.choice.Scheme, s.cred = sc, c
			break
		}
		if !common {
			return nil, fmt.Errorf("%w: the LAG offers %v, the vehicle accepts %v", ErrDowngrade, h.Schemes, s.opts.Schemes)
		}
		if s.cred == nil {
			return nil, lastErr
		}
	}
	ch, err := newChannel(noise.HandshakeNK, true, append([]byte(prologueBVLAG), frame...), staticKey{}, h.Cert.NoiseKey[:])
	if err != nil {
		return nil, err
	}
	s.ch = ch
	msg, err := ch.write(encode(&s.choice))
	if err != nil {
		return nil, err
	}
	return [][]byte{append([]byte{frameHS1}, msg...)}, nil
}

// credential picks the vehicle's credential for a session: the next unused
// pseudonym, or an LSAG ring under the LAG's linking base.
func (b *BV) credential(now time.Time, sc Scheme, h *hello, ringSize, minRing int) (*sessCred, error) {
	switch sc {
	case SchemePseudonym:
		for len(b.pseudo) > 0 {
			p := b.pseudo[0]
			b.pseudo = b.pseudo[1:] // one pseudonym per session, never reused
			if p.cert.CheckValidity(now) == nil {
				return &sessCred{scheme: sc, pseudo: p, group: b.Group}, nil
			}
		}
		return nil, fmt.Errorf("%w: no unused pseudonym certificate", ErrNoCredential)
	case SchemeLSAG:
		if b.group == nil {
			return nil, fmt.Errorf("%w: not enrolled", ErrNoCredential)
		}
		if !h.HasScope || h.Scope.LAGID != h.Cert.LAGID || !verify(b.ca.sign(), domScope, h.Scope.body(), h.Scope.Sig) {
			return nil, fmt.Errorf("%w: linking base", ErrUntrusted)
		}
		if e := Epoch(now); h.Scope.Epoch < e-1 || h.Scope.Epoch > e+1 {
			return nil, fmt.Errorf("%w: linking base of epoch %d", ErrExpired, h.Scope.Epoch)
		}
		base, err := lsag.ParsePoint(h.Scope.Base[:])
		if err != nil {
			return nil, fmt.Errorf("%w: linking base: %w", ErrUntrusted, err)
		}
		if b.group.IsRevoked(b.ringIndex) {
			return nil, fmt.Errorf("%w: own ring key", ErrRevoked)
		}
		members := b.pickRing(ringSize)
		if len(members) < minRing {
			return nil, fmt.Errorf("%w: a ring of %d is below the minimum anonymity set of %d; refresh the group list", ErrNoCredential, len(members), minRing)
		}
		keys := make([][32]byte, len(members))
		index := 0
		for i, m := range members {
			keys[i] = b.group.Keys[m]
			if m == b.ringIndex {
				index = i
			}
		}
		ring, err := lsag.NewRing(keys)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrNoCredential, err)
		}
		return &sessCred{scheme: sc, ring: ring, members: members, index: index, base: base, epoch: h.Scope.Epoch, group: b.Group}, nil
	}
	return nil, fmt.Errorf("%w: scheme %d", ErrDowngrade, sc)
}

// pickRing chooses the ring: the vehicle's bucket of the group list. The
// list is cut by index into buckets of ringSize members, [k*ringSize,
// (k+1)*ringSize), a last bucket with fewer members joining the one before
// it (unless that would pass MaxRingSize); the ring is the bucket's
// unrevoked members. It depends on the group list only, not on the LAG or
// the epoch, so every session of every vehicle of a bucket shows the same
// ring and comparing rings across LAGs and epochs tells nothing beyond the
// bucket, which is the anonymity set. Rings drawn afresh for each scope
// would always share the signer and fewer others, and link a vehicle's
// sessions by their overlap (TestUnlinkabilityCatchesLeaks).
func (b *BV) pickRing(ringSize int) []uint32 {
	return bucket(len(b.group.Keys), int(b.ringIndex), ringSize, b.group.IsRevoked)
}

// bucket returns the unrevoked members of the bucket of member i in a
// group of n, for rings of size (see pickRing).
func bucket(n, i, size int, revoked func(uint32) bool) []uint32 {
	size = max(1, size)
	lo := i / size * size
	hi := min(n, lo+size)
	full := n / size * size // members in full buckets
	if full > 0 && n-full < size && n-full+size <= MaxRingSize {
		// The last, partial bucket joins the last full one.
		if lo >= full {
			lo = full - size
		}
		if lo == full-size {
			hi = n
		}
	}
	var members []uint32
	for m := lo; m < hi; m++ {
		if !revoked(uint32(m)) {
			members = append(members, uint32(m))
		}
	}
	return members
}

func (c *sessCred) sign(b *BV, stmt []byte) ([]byte, error) {
	switch c.scheme {
	case SchemePseudonym:
		return ed25519.Sign(c.pseudo.key, stmt), nil
	case SchemeLSAG:
		sig, err := lsag.Sign(stmt, c.ring, c.index, b.ringKey, c.base)
		if err != nil {
			return nil, err
		}
		return sig.Marshal(), nil
	}
	return nil, fmt.Errorf("%w: scheme %d", ErrDowngrade, c.scheme)
}

// authenticate answers the LAG's challenge: a full anonymous
// authentication signed over the channel binding, or a ticket binder.
func (s *BVSession) authenticate(now time.Time) ([][]byte, error) {
	var err error
	if s.opKey, err = random32(); err != nil {
		return nil, err
	}
	var m message
	if s.choice.Resume {
		s.cred = s.ticket.cred
		m = &resumeReq{Ticket: s.ticket.ticket, Binder: mac(s.ticket.secret, "resume", s.ch.binding[:], s.challenge[:]), Role: s.opts.Role, OpKey: s.opKey}
		// A ticket is single use: drop it now, whatever the outcome.
		delete(s.b.tickets, s.cert.LAGID)
	} else {
		var cred []byte
		switch s.cred.scheme {
		case SchemePseudonym:
			cred = s.cred.pseudo.cert.Marshal()
		case SchemeLSAG:
			cred = (&ringRef{Group: s.cred.group, Members: s.cred.members}).marshal()
		}
		stmt := authStatement(s.ch.binding, s.challenge, s.cert.LAGID, s.cred.scheme, s.opts.Role, s.cred.epoch, cred)
		sig, err := s.cred.sign(s.b, stmt)
		if err != nil {
			return nil, err
		}
		m = &authReq{Scheme: s.cred.scheme, Role: s.opts.Role, Cred: cred, OpKey: s.opKey, Sig: sig}
	}
	s.state = BVAwaitPermit
	return s.seal(m)
}

func (s *BVSession) seal(m message) ([][]byte, error) {
	b, err := s.ch.seal(encode(m))
	if err != nil {
		return nil, err
	}
	return [][]byte{b}, nil
}

func (s *BVSession) message(now time.Time, m message) ([][]byte, error) {
	if r, ok := m.(*rejectMsg); ok {
		// A session refused after it was admitted (the CA terminated it)
		// leaves no ticket behind: one from a session the CA refused would
		// be refused again at every try.
		if s.kept != nil && s.b.tickets[s.cert.LAGID] == s.kept {
			delete(s.b.tickets, s.cert.LAGID)
		}
		return nil, &RejectedError{By: "lag", Reason: errOf(r.Code)}
	}
	if s.state == BVAwaitPermit {
		switch m := m.(type) {
		case *permitMsg:
			if s.choice.Resume {
				return nil, fmt.Errorf("%w: permit after resumption", ErrState)
			}
			return s.gotPermit(now, m)
		case *resumedMsg:
			if !s.choice.Resume {
				return nil, fmt.Errorf("%w: resumption reply", ErrState)
			}
			if !macOK(s.ticket.secret, m.MAC, "resumed", s.ch.binding[:], s.challenge[:]) {
				return nil, fmt.Errorf("%w: resumption reply", ErrBadMAC)
			}
			s.keepTicket(m.Ticket, m.TicketSecret)
			s.state = BVCharging
			s.view = BVView{LAGID: s.cert.LAGID, LAGGroup: s.cert.Group, Home: true, Service: m.Service, Scheme: s.cred.scheme, Resumed: true}
			return nil, nil
		}
		return nil, fmt.Errorf("%w: message %#x while awaiting the permit", ErrState, m.kind())
	}
	if s.state < BVCharging {
		return nil, fmt.Errorf("%w: message %#x", ErrState, m.kind())
	}
	switch m := m.(type) {
	case *batchMsg:
		if !verify(ed25519.PublicKey(s.cert.SignKey[:]), domBatch, m.signed(s.cert.LAGID), m.Sig) {
			return nil, fmt.Errorf("%w: batch confirmation", ErrBadSignature)
		}
		if !merkleVerify(m.Root, s.ch.binding, m.Index, m.Count, m.Path) {
			return nil, fmt.Errorf("%w: session not in the confirmed batch", ErrBadSignature)
		}
		s.view.BatchConfirmed, s.view.BatchSize = true, m.Count
	case *dischargeMsg:
		return s.discharge(now, m)
	case *replyMsg:
		return nil, s.reply(m)
	case *v2vMsg:
		if !macOK(s.opKey, m.MAC, "v2v", s.ch.binding[:], m.ReqID[:], wire.NewBuilder(nil).U32(m.EnergyWh).Out()) {
			return nil, fmt.Errorf("%w: V2V offer", ErrBadMAC)
		}
		s.view.V2VWh += int64(m.EnergyWh)
	case *inquiryReplyMsg:
		if !macOK(s.opKey, m.MAC, "inquiry", s.ch.binding[:], wire.NewBuilder(nil).U32(m.ActiveSessions).U32(m.PoolWh).Out()) {
			return nil, fmt.Errorf("%w: inquiry reply", ErrBadMAC)
		}
	default:
		return nil, fmt.Errorf("%w: message %#x from a LAG", ErrState, m.kind())
	}
	return nil, nil
}

func (s *BVSession) gotPermit(now time.Time, m *permitMsg) ([][]byte, error) {
	p, err := ParsePermit(m.Permit)
	if err != nil {
		return nil, err
	}
	switch {
	case !verify(s.b.ca.sign(), domPermit, p.body(), p.Sig):
		return nil, fmt.Errorf("%w: permit", ErrUntrusted)
	case p.Binding != s.ch.binding || p.LAGID != s.cert.LAGID:
		return nil, fmt.Errorf("%w: permit for another session", ErrReplay)
	case p.Scheme != s.cred.scheme || p.Role != s.opts.Role || p.Group != s.b.Group || p.Home != (s.cert.Group == s.b.Group):
		return nil, fmt.Errorf("%w: permit does not match the session", ErrUntrusted)
	case now.Unix() >= p.NotAfter:
		return nil, fmt.Errorf("%w: permit", ErrExpired)
	}
	s.permit = p
	if len(m.Ticket) > 0 {
		s.keepTicket(m.Ticket, m.TicketSecret)
	}
	s.state = BVCharging
	s.view = BVView{LAGID: s.cert.LAGID, LAGGroup: s.cert.Group, Home: p.Home, Service: p.Service, Scheme: p.Scheme}
	return s.seal(&grantMsg{MAC: mac(s.opKey, "grant", s.ch.binding[:], m.Permit)})
}

func (s *BVSession) keepTicket(t []byte, secret [32]byte) {
	if len(t) > 0 && len(t) <= maxTicket {
		s.kept = &ticketRec{ticket: t, secret: secret, cred: s.cred}
		s.b.tickets[s.cert.LAGID] = s.kept
	}
}

// discharge answers a forwarded discharge request: Agree or Decline,
// sealed to the CA in a fixed-length ciphertext and signed under the
// session credential, so the LAG learns neither the answer nor who gave it.
func (s *BVSession) discharge(now time.Time, m *dischargeMsg) ([][]byte, error) {
	if !macOK(s.opKey, m.MAC, "discharge", s.ch.binding[:], m.Request) {
		return nil, fmt.Errorf("%w: discharge request operator", ErrBadMAC)
	}
	d, err := ParseDischargeRequest(m.Request)
	if err != nil {
		return nil, err
	}
	if !verify(s.b.ca.sign(), domDischarge, d.body(), d.Sig) || d.LAGID != s.cert.LAGID {
		return nil, fmt.Errorf("%w: discharge request", ErrBadSignature)
	}
	if _, seen := s.requests[d.ID]; seen {
		return nil, fmt.Errorf("%w: discharge request %x", ErrReplay, d.ID[:4])
	}
	s.requests[d.ID] = d
	s.view.Requests++
	f, err := s.answer(now, d)
	if err != nil {
		return nil, err
	}
	return [][]byte{f}, nil
}

// answer seals the vehicle's current decision on a request.
func (s *BVSession) answer(now time.Time, d *DischargeRequest) ([]byte, error) {
	decision := Decline
	if s.opts.WillDischarge && (s.state == BVFullyCharged || s.state == BVDischarging) && now.Unix() < d.End {
		decision = Agree
	}
	key, err := random32()
	if err != nil {
		return nil, err
	}
	a := &answerPlain{ReqID: d.ID, Decision: decision, Battery: s.battery, ReplyKey: key}
	sealed, err := sealToCA(s.b.ca, "answer", s.ch.binding, a.marshal())
	if err != nil {
		return nil, err
	}
	sig, err := s.cred.sign(s.b, anonStatement(s.ch.binding, msgAnswer, d.ID[:], sealed))
	if err != nil {
		return nil, err
	}
	out, err := s.seal(&answerMsg{ReqID: d.ID, Sealed: sealed, Sig: sig})
	if err != nil {
		return nil, err
	}
	s.answers[d.ID] = append(s.answers[d.ID], pendingAnswer{key: key, decision: decision})
	s.decided[d.ID] = decision
	return out[0], nil
}

func (s *BVSession) agreesToAny() bool {
	for _, d := range s.decided {
		if d == Agree {
			return true
		}
	}
	return false
}

// SetWillDischarge changes the vehicle's willingness to discharge; call
// ReviseAnswers to tell the CA.
func (s *BVSession) SetWillDischarge(will bool) { s.opts.WillDischarge = will }

// ReviseAnswers re-answers every open request on which the vehicle's
// decision has changed since it answered: seed 002's vehicle "may first
// decline ... then change its mind" (and the other way round). A vehicle
// that declined while charging agrees once it is full.
func (s *BVSession) ReviseAnswers(now time.Time) ([][]byte, error) {
	if s.state < BVCharging || s.state == BVClosed {
		return nil, fmt.Errorf("%w: not admitted", ErrState)
	}
	ids := make([][16]byte, 0, len(s.requests))
	for id := range s.requests {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return string(ids[i][:]) < string(ids[j][:]) })
	var out [][]byte
	for _, id := range ids {
		d := s.requests[id]
		if now.Unix() >= d.End {
			delete(s.requests, id)
			continue
		}
		want := Decline
		if s.opts.WillDischarge && (s.state == BVFullyCharged || s.state == BVDischarging) {
			want = Agree
		}
		if s.decided[id] == want {
			continue
		}
		f, err := s.answer(now, d)
		if err != nil {
			return out, err
		}
		out = append(out, f)
	}
	return out, nil
}

func (s *BVSession) reply(m *replyMsg) error {
	label, dom := "ack", domAck
	if m.k == msgStatusReply {
		label, dom = "status", domStatus
	}
	if !macOK(s.opKey, m.MAC, label, s.ch.binding[:], m.Reply) {
		return fmt.Errorf("%w: %s operator", ErrBadMAC, label)
	}
	r, err := parseCAReply(m.Reply)
	if err != nil {
		return err
	}
	if !verify(s.b.ca.sign(), dom, r.body(), r.Sig) || r.Binding != s.ch.binding {
		return fmt.Errorf("%w: CA reply", ErrBadSignature)
	}
	if m.k == msgAck {
		// The ack opens under the reply key of one of the answers sent.
		var pa pendingAnswer
		var rep reply
		err := fmt.Errorf("%w: ack for request %x", ErrState, r.ReqID[:4])
		for i, cand := range s.answers[r.ReqID] {
			if rep, err = openReply(cand.key, replyAAD(r.Binding, r.ReqID[:]), r.Sealed); err == nil {
				pa = cand
				s.answers[r.ReqID] = slices.Delete(s.answers[r.ReqID], i, i+1)
				break
			}
		}
		if err != nil {
			return err
		}
		if Decision(rep.Kind) != pa.decision {
			return fmt.Errorf("%w: the CA acknowledged another decision", ErrBadSignature)
		}
		s.view.Acks = append(s.view.Acks, fmt.Sprintf("request %x: %s confirmed by the CA, %d W until %s", r.ReqID[:4], pa.decision, rep.A,
			time.Unix(rep.B, 0).UTC().Format("15:04")))
		if pa.decision == Agree && rep.A > 0 && s.state == BVFullyCharged {
			s.state = BVDischarging
		}
		if pa.decision == Decline && s.state == BVDischarging && !s.agreesToAny() {
			s.state = BVFullyCharged // agreed, then changed its mind
		}
		return nil
	}
	ps, ok := s.statuses[r.Seq]
	if !ok {
		return fmt.Errorf("%w: status reply %d", ErrState, r.Seq)
	}
	delete(s.statuses, r.Seq)
	rep, err := openReply(ps.key, replyAAD(r.Binding, seqBytes(r.Seq)), r.Sealed)
	if err != nil {
		return err
	}
	s.view.SOCPermille, s.view.BilledWh = rep.A, rep.B
	s.view.StatusReplies++
	if ps.kind == StatusStopDischarg && s.state == BVDischarging {
		s.state = BVCharging
	}
	return nil
}

// ReportStatus sends the vehicle's real battery state sealed to the CA; the
// LAG forwards it as an opaque pseudo-status. StatusFullyCharged moves the
// session to fully charged at once; StatusStopDischarg moves it back to
// charging when the CA's reply arrives.
func (s *BVSession) ReportStatus(kind StatusKind, bat Battery) ([]byte, error) {
	if s.state < BVCharging || s.state == BVClosed {
		return nil, fmt.Errorf("%w: status before access", ErrState)
	}
	if kind == StatusStopDischarg && s.state != BVDischarging {
		return nil, fmt.Errorf("%w: not discharging", ErrState)
	}
	key, err := random32()
	if err != nil {
		return nil, err
	}
	s.battery = bat
	seq := s.statusSeq + 1
	p := &statusPlain{Seq: seq, Kind: kind, Battery: bat, ReplyKey: key}
	sealed, err := sealToCA(s.b.ca, "status", s.ch.binding, p.marshal())
	if err != nil {
		return nil, err
	}
	sig, err := s.cred.sign(s.b, anonStatement(s.ch.binding, msgStatus, seqBytes(seq), sealed))
	if err != nil {
		return nil, err
	}
	out, err := s.seal(&statusMsg{Seq: seq, Sealed: sealed, Sig: sig})
	if err != nil {
		return nil, err
	}
	s.statusSeq = seq
	s.statuses[seq] = pendingStatus{key: key, kind: kind}
	if kind == StatusFullyCharged && s.state == BVCharging {
		s.state = BVFullyCharged
	}
	return out[0], nil
}

// Inquire asks the LAG about the station (a home-network service).
func (s *BVSession) Inquire() ([]byte, error) {
	if s.state < BVCharging || s.state == BVClosed {
		return nil, fmt.Errorf("%w: inquiry before access", ErrState)
	}
	out, err := s.seal(&inquiryMsg{})
	if err != nil {
		return nil, err
	}
	return out[0], nil
}

// Bye ends the session.
func (s *BVSession) Bye() ([]byte, error) {
	if s.ch == nil || !s.ch.ready() {
		s.state = BVClosed
		return nil, nil
	}
	out, err := s.seal(&byeMsg{})
	s.state = BVClosed
	if err != nil {
		return nil, err
	}
	return out[0], nil
}

// bvState is a vehicle's durable state, as JSON.
type bvState struct {
	Version   int           `json:"version"`
	RealID    string        `json:"real_id"`
	Group     string        `json:"group"`
	CA        []byte        `json:"ca"`
	Identity  []byte        `json:"identity_seed"`
	RingKey   []byte        `json:"ring_key"`
	Pseudo    []bvPseudo    `json:"pseudonyms"`
	GroupList []byte        `json:"group_list,omitempty"`
	RingIndex uint32        `json:"ring_index"`
	Tickets   []bvTicketRec `json:"tickets,omitempty"`
}

type bvPseudo struct {
	Cert []byte `json:"cert"`
	Seed []byte `json:"seed"`
}

type bvTicketRec struct {
	LAGID   string   `json:"lag"`
	Ticket  []byte   `json:"ticket"`
	Secret  []byte   `json:"secret"`
	Scheme  Scheme   `json:"scheme"`
	Pseudo  bvPseudo `json:"pseudonym,omitzero"`
	Members []uint32 `json:"ring,omitempty"`
	Base    []byte   `json:"base,omitempty"`
	Epoch   int64    `json:"epoch,omitempty"`
}

// Marshal encodes the vehicle's durable state (its secrets included: store
// it with mode 0600).
func (b *BV) Marshal() ([]byte, error) {
	st := bvState{Version: 1, RealID: b.RealID, Group: b.Group, CA: b.ca.Marshal(), Identity: b.identity.Seed(),
		RingKey: b.ringKey.Bytes(), RingIndex: b.ringIndex}
	for _, p := range b.pseudo {
		st.Pseudo = append(st.Pseudo, bvPseudo{Cert: p.cert.Marshal(), Seed: p.key.Seed()})
	}
	if b.group != nil {
		st.GroupList = b.group.Marshal()
	}
	ids := make([]string, 0, len(b.tickets))
	for id := range b.tickets {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		t := b.tickets[id]
		r := bvTicketRec{LAGID: id, Ticket: t.ticket, Secret: t.secret[:], Scheme: t.cred.scheme}
		if t.cred.pseudo != nil {
			r.Pseudo = bvPseudo{Cert: t.cred.pseudo.cert.Marshal(), Seed: t.cred.pseudo.key.Seed()}
		} else {
			r.Members, r.Base, r.Epoch = t.cred.members, t.cred.base.Bytes(), t.cred.epoch
		}
		st.Tickets = append(st.Tickets, r)
	}
	return json.Marshal(st)
}

// ParseBV decodes Marshal's output.
func ParseBV(data []byte) (*BV, error) {
	var st bvState
	if err := json.Unmarshal(data, &st); err != nil {
		return nil, fmt.Errorf("%w: vehicle state: %w", ErrMalformed, err)
	}
	if st.Version != 1 || len(st.Identity) != ed25519.SeedSize {
		return nil, fmt.Errorf("%w: vehicle state", ErrMalformed)
	}
	ca, err := ParseCAPublic(st.CA)
	if err != nil {
		return nil, err
	}
	rk, err := lsag.NewPrivateKey(st.RingKey)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	b := &BV{RealID: st.RealID, Group: st.Group, ca: ca, identity: ed25519.NewKeyFromSeed(st.Identity), ringKey: rk,
		ringIndex: st.RingIndex, tickets: map[string]*ticketRec{}}
	parsePseudo := func(p bvPseudo) (*pseudoCred, error) {
		c, err := pseudonym.ParseCert(p.Cert)
		if err != nil || len(p.Seed) != ed25519.SeedSize {
			return nil, fmt.Errorf("%w: stored pseudonym", ErrMalformed)
		}
		return &pseudoCred{cert: c, key: ed25519.NewKeyFromSeed(p.Seed)}, nil
	}
	for _, p := range st.Pseudo {
		pc, err := parsePseudo(p)
		if err != nil {
			return nil, err
		}
		b.pseudo = append(b.pseudo, pc)
	}
	if len(st.GroupList) > 0 {
		if b.group, err = ParseGroupList(st.GroupList); err != nil {
			return nil, err
		}
	}
	for _, t := range st.Tickets {
		if len(t.Secret) != 32 {
			return nil, fmt.Errorf("%w: stored ticket", ErrMalformed)
		}
		c := &sessCred{scheme: t.Scheme, group: b.Group, epoch: t.Epoch}
		switch t.Scheme {
		case SchemePseudonym:
			if c.pseudo, err = parsePseudo(t.Pseudo); err != nil {
				return nil, err
			}
		case SchemeLSAG:
			if b.group == nil {
				return nil, fmt.Errorf("%w: stored ticket without a group list", ErrMalformed)
			}
			keys := make([][32]byte, len(t.Members))
			for i, m := range t.Members {
				if int64(m) >= int64(len(b.group.Keys)) {
					return nil, fmt.Errorf("%w: stored ring", ErrMalformed)
				}
				keys[i] = b.group.Keys[m]
				if m == b.ringIndex {
					c.index = i
				}
			}
			if c.ring, err = lsag.NewRing(keys); err != nil {
				return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
			}
			if c.base, err = lsag.ParsePoint(t.Base); err != nil {
				return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
			}
			c.members = t.Members
		default:
			return nil, fmt.Errorf("%w: stored ticket scheme", ErrMalformed)
		}
		b.tickets[t.LAGID] = &ticketRec{ticket: t.Ticket, secret: [32]byte(t.Secret), cred: c}
	}
	return b, nil
}
