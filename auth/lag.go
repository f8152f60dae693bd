package auth

import (
	"crypto/cipher"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"slices"
	"sort"
	"time"

	"filippo.io/edwards25519"
	"github.com/flynn/noise"

	"github.com/gridveil/gridveil/auth/lsag"
	"github.com/gridveil/gridveil/auth/wire"
)

// LAGConfig is a local aggregator's identity and policy.
type LAGConfig struct {
	Cert     LAGCert
	NoiseKey noise.DHKey        // static key certified in Cert
	SignKey  ed25519.PrivateKey // batch confirmations; certified in Cert
	CA       CAPublic
	// Schemes are the credential schemes offered and accepted, in order of
	// preference; default pseudonym, then LSAG. A vehicle's choice outside
	// this list is a downgrade and is refused.
	Schemes []Scheme
	// TicketKey seals resumption tickets for home vehicles; zero disables
	// resumption.
	TicketKey [32]byte
	// TicketLifetime bounds a chain of resumptions after one full
	// authentication; default 12 h.
	TicketLifetime time.Duration
}

type lagState uint8

const (
	lsAwaitHS1 lagState = iota
	lsAwaitAuth
	lsVerifying
	lsAwaitGrant
	lsActive
	// lsResumeHeld: a resumption that arrived while the link to the CA
	// was being re-established, held until the first sync (holdResume).
	lsResumeHeld
)

type lagSession struct {
	id        ConnID
	state     lagState
	hello     []byte
	offered   []Scheme
	scope     *ScopeBase
	resumeOK  bool
	ch        *channel
	choice    choice
	challenge [32]byte
	role      Role
	opKey     [32]byte
	token     StationToken // derived from opKey when it arrives (setOpKey)
	hasToken  bool         // token is set and indexed in LAG.byToken
	cred      *credMaterial
	entry     *verifyEntry
	check     *check
	permit    *Permit
	permitRaw []byte // the permit as the CA encoded it, which the grant MACs
	resumed   bool
	origin    [32]byte
	pending   map[[16]byte]int // discharge requests forwarded -> answers given
	statusSeq uint32
	answers   int
	reports   int
	confirmed bool
	v2vWh     int64
	busy      bool // a Step holds this session's frame (Begin to Finish)
	inBatch   bool // its request is in a Batch taken for verification
}

// LAG is a local aggregator's protocol core: it serves vehicles over
// Noise NK sessions, verifies their anonymous credentials (in batches),
// asks the CA for permits over its Noise IK link, forwards the CA's
// requests and the vehicles' sealed answers, confirms batches of gathered
// vehicles with one signature, and resumes home vehicles with tickets. It
// is a pure state machine and not safe for concurrent use: its methods
// need one lock. The costly work of a frame (Step.Run) and of a batch
// verification (Batch.VerifyPart) is done outside it, so that a shell can
// spread that work over every core; see Step and Batch.
type LAG struct {
	cfg       LAGConfig
	static    staticKey
	ticketKey cipher.AEAD // AES-256-GCM under cfg.TicketKey; nil: no resumption
	sessions  map[ConnID]*lagSession
	byBinding map[[32]byte]ConnID
	byToken   map[StationToken]ConnID // sessions with an operation key, by station token
	nextID    ConnID
	// link to the CA
	link       *channel
	linkReady  bool
	awaitCA    []*lagSession // verified locally, not yet sent to the CA
	pending    []*lagSession // authentication requests awaiting Flush
	crl        map[[16]byte]bool
	crlVersion uint64
	crlPending [][16]byte // serials of the revocation list being sent (crlChunkMsg)
	groups     map[string]*groupKeys
	groupVer   map[string]uint64 // version of each group's list held (groupHave)
	scopes     map[int64]ScopeBase
	// resumption
	usedTickets map[[32]byte]int64
	origins     map[[32]byte]*originRec
	// notes are resumptions admitted while the link was down, for the CA
	// once it is back; caInstance is the CA start the origins are from.
	notes      []*resumedNoteMsg
	caInstance [16]byte
	// heldResumes wait for the first sync of a link being re-established
	// (holdResume).
	heldResumes []heldResume
	// batches and discharge
	batchSeq  uint64
	toConfirm [][32]byte
	requests  map[[16]byte]*DischargeRequest
	poolWh    int64
	dischAgg  map[[16]byte]Aggregate
	statusAgg Aggregate
}

type heldResume struct {
	s   *lagSession
	m   *resumeReq
	now time.Time
}

// ResumeHoldMax bounds how long a resumption waits for the first sync of
// a link being re-established; after that it is decided as with the link
// down (on the LAG's last revocation list).
const ResumeHoldMax = 10 * time.Second

type originRec struct {
	cred     *credMaterial
	notAfter int64
}

// NewLAG starts a LAG. It checks that the certificate is the CA's and
// matches the keys.
func NewLAG(cfg LAGConfig, now time.Time) (*LAG, error) {
	if err := cfg.Cert.Verify(cfg.CA, now); err != nil {
		return nil, err
	}
	if [32]byte(cfg.NoiseKey.Public) != cfg.Cert.NoiseKey || [32]byte(cfg.SignKey.Public().(ed25519.PublicKey)) != cfg.Cert.SignKey {
		return nil, fmt.Errorf("%w: keys do not match the certificate", ErrUntrusted)
	}
	if len(cfg.Schemes) == 0 {
		cfg.Schemes = []Scheme{SchemePseudonym, SchemeLSAG}
	}
	for _, s := range cfg.Schemes {
		if !s.valid() {
			return nil, fmt.Errorf("%w: scheme %d", ErrDowngrade, s)
		}
	}
	if cfg.TicketLifetime == 0 {
		cfg.TicketLifetime = 12 * time.Hour
	}
	static, err := newStaticKey(cfg.NoiseKey)
	if err != nil {
		return nil, err
	}
	var tk cipher.AEAD
	if cfg.TicketKey != [32]byte{} {
		// Built once: each home admission issues a ticket.
		if tk, err = newGCM(cfg.TicketKey); err != nil {
			return nil, err
		}
	}
	return &LAG{
		cfg: cfg, static: static, ticketKey: tk, sessions: map[ConnID]*lagSession{}, byBinding: map[[32]byte]ConnID{}, byToken: map[StationToken]ConnID{}, nextID: 1,
		crl: map[[16]byte]bool{}, groups: map[string]*groupKeys{}, groupVer: map[string]uint64{}, scopes: map[int64]ScopeBase{},
		usedTickets: map[[32]byte]int64{}, origins: map[[32]byte]*originRec{}, requests: map[[16]byte]*DischargeRequest{},
		dischAgg: map[[16]byte]Aggregate{},
	}, nil
}

// ID is the LAG's certified identifier.
func (l *LAG) ID() string { return l.cfg.Cert.LAGID }

// Linked reports whether the link to the CA is up and synchronised.
func (l *LAG) Linked() bool { return l.linkReady }

// ConnectCA starts the Noise IK handshake of the link to the CA and returns
// its first frame. Sessions waiting for the CA are re-sent once it is up.
func (l *LAG) ConnectCA() ([]byte, error) {
	ch, err := newChannel(noise.HandshakeIK, true, []byte(prologueLink), l.static, l.cfg.CA.NoiseKey[:])
	if err != nil {
		return nil, err
	}
	msg, err := ch.write(nil)
	if err != nil {
		return nil, err
	}
	l.link, l.linkReady = ch, false
	return append([]byte{frameLink}, msg...), nil
}

// CADisconnected drops the link. Sessions whose permits were asked for are
// refused with ErrUnavailable, since the answer is lost.
func (l *LAG) CADisconnected() Output {
	var out Output
	l.link, l.linkReady = nil, false
	if len(l.heldResumes) > 0 {
		l.releaseResumes(l.heldResumes[len(l.heldResumes)-1].now, time.Time{}, &out)
	}
	for _, s := range l.sessions {
		if s.state == lsVerifying && s.entry != nil && !s.inBatch && !slices.Contains(l.awaitCA, s) && !slices.Contains(l.pending, s) {
			l.reject(&out, s, fmt.Errorf("%w: link lost while verifying", ErrUnavailable))
		}
	}
	return out
}

// Open accepts a vehicle's connection and returns the hello to send it.
func (l *LAG) Open(now time.Time) (ConnID, Output, error) {
	var out Output
	id := l.nextID
	l.nextID++
	s := &lagSession{id: id, pending: map[[16]byte]int{}}
	h := &hello{Version: ProtocolVersion, Cert: l.cfg.Cert, Resume: l.cfg.TicketKey != [32]byte{}}
	for _, sc := range l.cfg.Schemes {
		if sc == SchemeLSAG {
			b, ok := l.scopes[Epoch(now)]
			if !ok {
				continue // no linking base yet: LSAG is not offered
			}
			h.HasScope, h.Scope = true, b
			s.scope = &b
		}
		h.Schemes = append(h.Schemes, sc)
	}
	if len(h.Schemes) == 0 {
		return 0, out, fmt.Errorf("%w: no credential scheme available (LAG not synchronised with the CA)", ErrUnavailable)
	}
	s.hello = encode(h)
	s.offered = h.Schemes
	s.resumeOK = h.Resume
	ch, err := newChannel(noise.HandshakeNK, false, append([]byte(prologueBVLAG), s.hello...), l.static, nil)
	if err != nil {
		return 0, out, err
	}
	s.ch = ch
	l.sessions[id] = s
	out.send(id, s.hello)
	return id, out, nil
}

// Authenticated reports whether the vehicle on connection id has proved
// its credential (the session is granted or awaits the CA's grant). The
// shell keeps a connection under its limits for unauthenticated peers
// (handshake deadline, small frames, a shared memory budget) until then.
func (l *LAG) Authenticated(id ConnID) bool {
	s := l.sessions[id]
	return s != nil && (s.state == lsAwaitGrant || s.state == lsActive)
}

// Close forgets a vehicle's connection and tells the CA the session ended.
func (l *LAG) Close(id ConnID) Output {
	var out Output
	s := l.sessions[id]
	if s == nil {
		return out
	}
	delete(l.sessions, id)
	l.unindexToken(s)
	if s.state == lsVerifying { // only then is it queued (a linear search)
		l.pending = slices.DeleteFunc(l.pending, func(p *lagSession) bool { return p == s })
		l.awaitCA = slices.DeleteFunc(l.awaitCA, func(p *lagSession) bool { return p == s })
	}
	if s.resumed && len(l.notes) > 0 { // gone before the CA heard of it
		l.notes = slices.DeleteFunc(l.notes, func(n *resumedNoteMsg) bool { return n.Binding == s.ch.binding })
	}
	if s.ch != nil && s.ch.enc != nil {
		delete(l.byBinding, s.ch.binding)
		if s.state == lsActive || s.state == lsAwaitGrant {
			l.toCA(&out, &sessionEndMsg{Binding: s.ch.binding})
		}
	}
	return out
}

// toCA sends m on the CA link and reports whether it did: with the link
// down the message is dropped, and callers must not log it as forwarded.
func (l *LAG) toCA(out *Output, m message) bool {
	if !l.linkReady {
		return false
	}
	b, err := l.link.sealMsg(m)
	if err != nil {
		out.fail(ToCA, "link", err)
		return false
	}
	out.send(ToCA, b)
	return true
}

// errLinkDown is the reason of a vehicle's message the LAG dropped.
var errLinkDown = fmt.Errorf("%w: the CA link is down, message dropped", ErrUnavailable)

func (l *LAG) toBV(out *Output, s *lagSession, m message) {
	b, err := s.ch.sealMsg(m)
	if err != nil {
		l.reject(out, s, err)
		return
	}
	out.send(s.id, b)
}

// reject refuses a session: a reject code, then the connection closes.
func (l *LAG) reject(out *Output, s *lagSession, err error) {
	if s.ch != nil && s.ch.ready() {
		if b, e := s.ch.seal(encode(&rejectMsg{Code: codeOf(err)})); e == nil {
			out.send(s.id, b)
		}
	} else {
		out.send(s.id, RejectFrame(err))
	}
	out.fail(s.id, "rejected", err)
	out.Close = append(out.Close, s.id)
	out.merge(l.Close(s.id))
}

// Receive processes one frame from a vehicle. Rejections are in the output
// (a reject frame, the connection in Close, an event with the error); the
// error is also returned. It is Begin, Step.Run and Finish in a row.
func (l *LAG) Receive(now time.Time, id ConnID, frame []byte) (Output, error) {
	st := l.Begin(now, id, frame)
	st.Run()
	return l.Finish(st)
}

// A Step is the handling of one vehicle frame, cut in three so that a
// shell can do the costly part without the LAG's lock, for many sessions
// at once on all cores:
//
//	st := l.Begin(now, id, frame) // under the lock; cheap
//	st.Run()                      // no lock; the session's cryptography
//	out, err := l.Finish(st)      // under the lock; cheap
//
// Run is where the cost is: the Noise handshake's two X25519 operations
// and key pair, the transport decryption, the decoding of a credential,
// the grant's MAC and the session signature on a later answer or status
// report. It uses only what Begin handed it: the session's channel (all of
// it during the handshake, only its receiving cipher afterwards, the
// LAG's sending side staying with the session), and data that no longer
// changes (the LAG's certificate and static key, the session's binding,
// challenge, operator key, permit and established credential). It reads
// and writes nothing else of the LAG, so Runs of different sessions may
// overlap each other and any call on the LAG. Finish applies the result under the same rules and in the same
// order of checks as one Receive, so a sequence of frames gives the same
// outcome whichever way it is driven (TestParallelMatchesSequential).
//
// One session has at most one Step in flight: Begin refuses a second with
// ErrState without touching the session (frames of one connection arrive
// in order, so a shell that reads each connection in one goroutine never
// does this). A session closed while its Step ran is forgotten; Finish
// then returns ErrUnknown and an empty output.
type Step struct {
	now   time.Time
	id    ConnID
	s     *lagSession // nil: nothing of the session may be touched
	frame []byte
	err   error
	ran   bool

	// lent by Begin
	hs        *channel           // the handshake: the whole channel
	dec       *noise.CipherState // afterwards: the receiving cipher only
	offered   []Scheme
	resumeOK  bool
	lagID     string
	binding   [32]byte
	challenge [32]byte
	choice    choice
	scope     *ScopeBase
	cred      *credMaterial
	opKey     [32]byte
	permitRaw []byte // set once the CA's permit came: the grant's MAC covers it

	// Run's results
	reply    []byte // the second handshake message
	openErr  bool   // the transport message did not decrypt
	msg      message
	check    *check // a decoded credential (authReq), before resolve
	checkErr error
	sigDone  bool  // sigErr holds verifyAnon's verdict for cred
	sigErr   error // on an answer or a status report
	macDone  bool  // macOK holds the grant MAC's check against permitRaw
	macOK    bool
}

// Begin starts handling a vehicle's frame. The LAG's lock must be held.
func (l *LAG) Begin(now time.Time, id ConnID, frame []byte) *Step {
	st := &Step{now: now, id: id, frame: frame}
	s := l.sessions[id]
	switch {
	case s == nil:
		st.err = fmt.Errorf("%w: session %d", ErrUnknown, id)
		return st
	case s.busy:
		st.err = fmt.Errorf("%w: session %d already has a frame in progress", ErrState, id)
		return st
	}
	st.s, s.busy = s, true
	switch {
	case len(frame) == 0:
		st.err = fmt.Errorf("%w: empty frame", ErrMalformed)
	case s.state == lsAwaitHS1:
		if frame[0] != frameHS1 {
			st.err = fmt.Errorf("%w: frame type %d before the handshake", ErrState, frame[0])
			break
		}
		// Nothing else touches a channel whose handshake is not over; it is
		// lent whole and given back by Finish.
		st.hs, s.ch = s.ch, nil
		st.offered, st.resumeOK = s.offered, s.resumeOK
	case frame[0] != frameData:
		st.err = fmt.Errorf("%w: frame type %d after the handshake", ErrState, frame[0])
	case !s.ch.ready():
		st.err = fmt.Errorf("%w: channel not established", ErrState)
	default:
		// The receiving cipher is this frame's alone; the sending one stays
		// with the session, for what the LAG sends meanwhile.
		st.dec, s.ch.dec = s.ch.dec, nil
		st.lagID, st.binding, st.challenge, st.choice = l.cfg.Cert.LAGID, s.ch.binding, s.challenge, s.choice
		st.scope, st.cred, st.opKey, st.permitRaw = s.scope, s.cred, s.opKey, s.permitRaw
	}
	return st
}

// Run does the step's cryptography. It needs no lock (see Step) and does
// nothing the second time.
func (st *Step) Run() {
	if st.err != nil || st.ran {
		return
	}
	st.ran = true
	if st.hs != nil {
		st.err = st.handshake()
		return
	}
	pt, err := openTransport(st.dec, st.frame[1:])
	if err != nil {
		st.err, st.openErr = err, true
		return
	}
	if st.msg, st.err = parseAny(pt); st.err != nil {
		return
	}
	switch m := st.msg.(type) {
	case *authReq:
		epoch := int64(0)
		if m.Scheme == SchemeLSAG && st.scope != nil {
			epoch = st.scope.Epoch
		}
		st.check, st.checkErr = decodeCheck(st.lagID, st.now, 1, st.binding, st.challenge, m.Scheme, m.Role, epoch, m.Cred, m.Sig)
	case *grantMsg:
		if st.permitRaw != nil {
			st.macDone, st.macOK = true, macOK(st.opKey, m.MAC, "grant", st.binding[:], st.permitRaw)
		}
	case *answerMsg:
		if st.cred != nil {
			st.sigDone, st.sigErr = true, st.cred.verifyAnon(anonStatement(st.binding, msgAnswer, m.ReqID[:], m.Sealed), m.Sig)
		}
	case *statusMsg:
		if st.cred != nil {
			st.sigDone, st.sigErr = true, st.cred.verifyAnon(anonStatement(st.binding, msgStatus, seqBytes(m.Seq), m.Sealed), m.Sig)
		}
	}
}

// handshake reads the vehicle's first Noise message (version, scheme,
// resumption wish) and writes the second with a fresh challenge.
func (st *Step) handshake() error {
	payload, err := st.hs.read(st.frame[1:])
	if err != nil {
		return err
	}
	if err := decode(payload, &st.choice); err != nil {
		return err
	}
	if st.choice.Version != ProtocolVersion {
		return fmt.Errorf("%w: protocol version %d", ErrDowngrade, st.choice.Version)
	}
	if !slices.Contains(st.offered, st.choice.Scheme) {
		return fmt.Errorf("%w: scheme %s was not offered", ErrDowngrade, st.choice.Scheme)
	}
	if st.choice.Resume && !st.resumeOK {
		return fmt.Errorf("%w: resumption not offered", ErrState)
	}
	if st.challenge, err = random32(); err != nil {
		return err
	}
	msg, err := st.hs.write(st.challenge[:])
	if err != nil {
		return err
	}
	st.reply = append([]byte{frameHS2}, msg...)
	return nil
}

// Finish applies a step. The LAG's lock must be held. Rejections are in
// the output, as for Receive.
func (l *LAG) Finish(st *Step) (Output, error) {
	var out Output
	s := st.s
	if s == nil {
		return out, st.err
	}
	if l.sessions[st.id] != s {
		return out, fmt.Errorf("%w: session %d closed while its frame was handled", ErrUnknown, st.id)
	}
	s.busy = false
	st.Run() // if the shell did not: now, under the lock
	if st.hs != nil {
		s.ch = st.hs
	}
	if st.dec != nil {
		s.ch.dec = st.dec
		if st.openErr {
			s.ch.dead = true // as channel.open does on failure
		}
	}
	err := st.err
	if err == nil {
		err = l.apply(s, st, &out)
	}
	if err != nil {
		l.reject(&out, s, err)
		return out, err
	}
	return out, nil
}

// apply is the part of a frame's handling that reads or changes the LAG's
// state, with Run's results.
func (l *LAG) apply(s *lagSession, st *Step, out *Output) error {
	now := st.now
	if st.hs != nil {
		s.choice, s.challenge = st.choice, st.challenge
		l.byBinding[s.ch.binding] = s.id
		s.state = lsAwaitAuth
		out.send(s.id, st.reply)
		return nil
	}
	switch m := st.msg.(type) {
	case *authReq:
		if s.state != lsAwaitAuth || s.choice.Resume {
			return fmt.Errorf("%w: authentication request", ErrState)
		}
		return l.auth(now, s, m, st)
	case *resumeReq:
		if s.state != lsAwaitAuth || !s.choice.Resume {
			return fmt.Errorf("%w: resumption request", ErrState)
		}
		if l.link != nil && !l.linkReady {
			l.holdResume(now, s, m, out)
			return nil
		}
		return l.resume(now, s, m, out)
	case *grantMsg:
		if s.state != lsAwaitGrant {
			return fmt.Errorf("%w: grant", ErrState)
		}
		// The permit and the operator key never change once the permit
		// came, so Run's check stands; without it (the permit came while
		// the frame was on its way), check now.
		ok := st.macOK
		if !st.macDone {
			ok = macOK(s.opKey, m.MAC, "grant", s.ch.binding[:], s.permitRaw)
		}
		if !ok {
			return fmt.Errorf("%w: grant", ErrBadMAC)
		}
		s.state = lsActive
		l.toConfirm = append(l.toConfirm, s.ch.binding)
		out.event(s.id, "authenticated", "%s", l.describe(s))
		l.recordEvidence(now, out, s)
		l.forwardOpen(now, s, out)
		return nil
	}
	if s.state != lsActive {
		return fmt.Errorf("%w: message %#x before access was granted", ErrState, st.msg.kind())
	}
	// sigOK is Run's verdict on the session signature, or the check done
	// now if Run had no credential to check it with.
	sigOK := func(stmt, sig []byte) error {
		if st.sigDone && st.cred == s.cred {
			return st.sigErr
		}
		return s.cred.verifyAnon(stmt, sig)
	}
	switch m := st.msg.(type) {
	case *answerMsg:
		n, got := s.pending[m.ReqID]
		if !got {
			return fmt.Errorf("%w: answer to request %x, which this session did not get", ErrState, m.ReqID[:4])
		}
		if n >= maxAnswers {
			return fmt.Errorf("%w: answer %d to request %x", ErrNotPermitted, n+1, m.ReqID[:4])
		}
		if err := sigOK(anonStatement(s.ch.binding, msgAnswer, m.ReqID[:], m.Sealed), m.Sig); err != nil {
			return err
		}
		if len(m.Sealed) != sealedAnswerSize {
			return fmt.Errorf("%w: sealed answer of %d bytes", ErrMalformed, len(m.Sealed))
		}
		s.pending[m.ReqID]++
		s.answers++
		if !l.toCA(out, &answerFwdMsg{Binding: s.ch.binding, Answer: *m}) {
			out.fail(s.id, "answer-dropped", fmt.Errorf("session %d's answer to request %x: %w", s.id, m.ReqID[:4], errLinkDown))
			break
		}
		out.event(s.id, "answer-forwarded", "session %d answered request %x: %d sealed bytes (content unknown to the LAG)", s.id, m.ReqID[:4], len(m.Sealed))
	case *statusMsg:
		if m.Seq != s.statusSeq+1 {
			return fmt.Errorf("%w: status report %d after %d", ErrReplay, m.Seq, s.statusSeq)
		}
		if err := sigOK(anonStatement(s.ch.binding, msgStatus, seqBytes(m.Seq), m.Sealed), m.Sig); err != nil {
			return err
		}
		if len(m.Sealed) != sealedStatusSize {
			return fmt.Errorf("%w: sealed status of %d bytes", ErrMalformed, len(m.Sealed))
		}
		s.statusSeq = m.Seq
		s.reports++
		if !l.toCA(out, &statusFwdMsg{Binding: s.ch.binding, Status: *m}) {
			out.fail(s.id, "status-dropped", fmt.Errorf("session %d's pseudo-status %d: %w", s.id, m.Seq, errLinkDown))
			break
		}
		out.event(s.id, "status-forwarded", "session %d sent pseudo-status %d: %d sealed bytes (battery unknown to the LAG)", s.id, m.Seq, len(m.Sealed))
	case *inquiryMsg:
		if !s.service().Has(ServiceInquiry) {
			return fmt.Errorf("%w: inquiries are a home-network service", ErrNotPermitted)
		}
		r := &inquiryReplyMsg{ActiveSessions: uint32(l.active()), PoolWh: uint32(max(0, min(l.poolWh, 1<<31)))}
		r.MAC = mac(s.opKey, "inquiry", s.ch.binding[:], wire.NewBuilder(nil).U32(r.ActiveSessions).U32(r.PoolWh).Out())
		l.toBV(out, s, r)
	case *byeMsg:
		out.event(s.id, "bye", "session %d left", s.id)
		out.Close = append(out.Close, s.id)
		out.merge(l.Close(s.id))
	default:
		return fmt.Errorf("%w: message %#x from a vehicle", ErrState, st.msg.kind())
	}
	return nil
}

func (s *lagSession) service() Service {
	if s.resumed {
		return ServiceFull
	}
	if s.permit == nil {
		return 0
	}
	return s.permit.Service
}

func (l *LAG) active() int {
	n := 0
	for _, s := range l.sessions {
		if s.state == lsActive {
			n++
		}
	}
	return n
}

func (l *LAG) describe(s *lagSession) string {
	home := "visiting"
	if s.resumed || (s.permit != nil && s.permit.Home) {
		home = "home"
	}
	how := s.cred.scheme.String()
	if s.resumed {
		how = "resumption ticket"
	}
	return fmt.Sprintf("session %d: a vehicle of group %s, role %s, %s network, %s service, by %s, credential ref %x (identity unknown to the LAG)",
		s.id, s.cred.group, s.role, home, s.service(), how, s.cred.ref[:6])
}

func (l *LAG) env(now time.Time) *verifierEnv {
	return &verifierEnv{
		ca: l.cfg.CA, groups: l.groups, lagID: l.cfg.Cert.LAGID, now: now, maxEpoch: 1,
		base: func(lagID string, epoch int64) (*edwards25519.Point, error) {
			b, ok := l.scopes[epoch]
			if !ok {
				return nil, fmt.Errorf("%w: no linking base for epoch %d", ErrExpired, epoch)
			}
			return lsag.ParsePoint(b.Base[:])
		},
		revoked: func(serial [16]byte) bool { return l.crl[serial] },
	}
}

// auth checks everything about a vehicle's credential but the signatures,
// and queues it for the next Flush. Run decoded the credential (st.check);
// what needs the LAG's state (revocation, group keys, linking base) is
// resolved here.
func (l *LAG) auth(now time.Time, s *lagSession, m *authReq, st *Step) error {
	if m.Scheme != s.choice.Scheme {
		return fmt.Errorf("%w: scheme %s after choosing %s", ErrDowngrade, m.Scheme, s.choice.Scheme)
	}
	epoch := int64(0)
	if m.Scheme == SchemeLSAG {
		if s.scope == nil {
			return fmt.Errorf("%w: LSAG without a linking base", ErrDowngrade)
		}
		epoch = s.scope.Epoch
	}
	if st.checkErr != nil {
		return st.checkErr
	}
	c := st.check
	if err := l.env(now).resolve(c, m.Sig); err != nil {
		return err
	}
	s.check, s.role = c, m.Role
	l.setOpKey(s, m.OpKey)
	s.entry = &verifyEntry{Binding: s.ch.binding, Challenge: s.challenge, Scheme: m.Scheme, Role: m.Role, Epoch: epoch, Cred: m.Cred, Sig: m.Sig}
	s.state = lsVerifying
	l.pending = append(l.pending, s)
	return nil
}

// Pending is the number of authentication requests waiting for Flush.
func (l *LAG) Pending() int { return len(l.pending) }

// Flush verifies every queued authentication request, pseudonym
// credentials in one batch, and sends those that pass to the CA in
// verification messages (of at most maxVerifyBytes). Those that fail are
// refused. It is TakeBatch, Batch.Verify and ApplyBatch in a row.
func (l *LAG) Flush(now time.Time) Output {
	b := l.TakeBatch()
	b.Verify()
	return l.ApplyBatch(now, b)
}

// A Batch is the authentication requests gathered since the last one,
// taken out of the LAG so that their signatures can be verified without
// its lock (Verify, or VerifyPart on several cores), then applied:
//
//	b := l.TakeBatch()            // under the lock
//	b.VerifyPart(i, n)            // no lock; parts 0..n-1 may run at once
//	out := l.ApplyBatch(now, b)   // under the lock, after every part
//
// A Batch holds only what the requests' checks need (statements,
// signatures, certificates, rings: none of it changes once gathered) and
// the CA's public key. Sessions closed meanwhile are skipped by ApplyBatch.
type Batch struct {
	ca       CAPublic
	sessions []*lagSession
	checks   []*check
	errs     []error
	done     []bool
}

// TakeBatch takes the queued authentication requests. The LAG's lock must
// be held.
func (l *LAG) TakeBatch() *Batch {
	b := &Batch{ca: l.cfg.CA, sessions: l.pending}
	l.pending = nil
	b.checks = make([]*check, len(b.sessions))
	for i, s := range b.sessions {
		b.checks[i] = s.check
		s.inBatch = true
	}
	b.errs = make([]error, len(b.checks))
	b.done = make([]bool, len(b.checks))
	return b
}

// Len is the number of requests in the batch.
func (b *Batch) Len() int { return len(b.checks) }

// Verify verifies the whole batch.
func (b *Batch) Verify() { b.VerifyPart(0, 1) }

// VerifyPart verifies the i-th of n contiguous parts of the batch
// (pseudonym credentials in one batch equation per part, LSAG signatures
// one by one). Different parts touch different entries, so they may run
// concurrently; a part verified twice is verified once.
func (b *Batch) VerifyPart(i, n int) {
	if n < 1 || i < 0 || i >= n {
		return
	}
	lo, hi := len(b.checks)*i/n, len(b.checks)*(i+1)/n
	if lo == hi || b.done[lo] {
		return
	}
	copy(b.errs[lo:hi], verifyChecks(b.ca, b.checks[lo:hi]))
	for k := lo; k < hi; k++ {
		b.done[k] = true
	}
}

// ApplyBatch refuses the requests that failed and sends the others to the
// CA. The LAG's lock must be held, and every VerifyPart over.
func (l *LAG) ApplyBatch(now time.Time, b *Batch) Output {
	var out Output
	var missed []int
	for k, d := range b.done {
		if !d {
			missed = append(missed, k)
		}
	}
	if len(missed) > 0 { // parts the shell did not verify: now, under the lock
		cs := make([]*check, len(missed))
		for j, k := range missed {
			cs[j] = b.checks[k]
		}
		for j, err := range verifyChecks(b.ca, cs) {
			b.errs[missed[j]], b.done[missed[j]] = err, true
		}
	}
	for i, s := range b.sessions {
		s.inBatch = false
		if l.sessions[s.id] != s {
			continue // closed while the batch was verified
		}
		if err := b.errs[i]; err != nil {
			l.reject(&out, s, err)
			continue
		}
		s.cred = s.check.cred
		s.check = nil
		l.awaitCA = append(l.awaitCA, s)
	}
	return l.sendAwaiting(out)
}

// maxVerifyBytes bounds the entries of one verification message to the
// CA, a quarter of the link's frame limit: 2600 pseudonym entries, or 110
// LSAG entries over rings of the largest size. One message for 10,000
// vehicles would pass the limit; several also let the CA answer the first
// while the LAG still verifies.
const maxVerifyBytes = 1 << 20

func (l *LAG) sendAwaiting(out Output) Output {
	if !l.linkReady || len(l.awaitCA) == 0 {
		return out
	}
	m, size := &verifyMsg{}, 0
	for _, s := range l.awaitCA {
		e := s.entry
		n := 32 + 32 + 1 + 1 + 8 + 4 + len(e.Cred) + 4 + len(e.Sig)
		if len(m.Entries) > 0 && size+n > maxVerifyBytes {
			l.toCA(&out, m)
			m, size = &verifyMsg{}, 0
		}
		m.Entries, size = append(m.Entries, *e), size+n
	}
	l.toCA(&out, m)
	l.awaitCA = nil
	return out
}

// resume admits a home vehicle with a ticket: symmetric cryptography only,
// and no round trip to the CA (which is told afterwards).
func (l *LAG) resume(now time.Time, s *lagSession, m *resumeReq, out *Output) error {
	t, err := l.openTicket(m.Ticket)
	if err != nil {
		return err
	}
	if now.Unix() >= t.NotAfter {
		return fmt.Errorf("%w: resumption ticket", ErrExpired)
	}
	o := l.origins[t.Origin]
	if o == nil {
		return fmt.Errorf("%w: ticket's origin session", ErrUnknown)
	}
	if l.originRevoked(o) {
		return fmt.Errorf("%w: the credential of the ticket's origin session", ErrRevoked)
	}
	id := hash32(m.Ticket)
	if _, used := l.usedTickets[id]; used {
		return fmt.Errorf("%w: resumption ticket", ErrReplay)
	}
	if !macOK(t.Secret, m.Binder, "resume", s.ch.binding[:], s.challenge[:]) {
		return fmt.Errorf("%w: ticket binder", ErrBadMAC)
	}
	if !m.Role.valid() {
		return fmt.Errorf("%w: role %d", ErrMalformed, m.Role)
	}
	l.usedTickets[id] = t.NotAfter
	s.state, s.resumed, s.role, s.origin, s.cred = lsActive, true, m.Role, t.Origin, o.cred
	l.setOpKey(s, m.OpKey)
	ticket, secret, err := l.issueTicket(now, t.Origin, t.NotAfter)
	if err != nil {
		return err
	}
	l.toBV(out, s, &resumedMsg{MAC: mac(t.Secret, "resumed", s.ch.binding[:], s.challenge[:]), Service: ServiceFull, Ticket: ticket, TicketSecret: secret})
	note := &resumedNoteMsg{Binding: s.ch.binding, Origin: t.Origin, Role: m.Role}
	if l.linkReady {
		l.toCA(out, note)
	} else {
		// Admitted on the LAG's last revocation list while the CA is out of
		// reach; the CA checks it once the link is back (and the LAG
		// re-checks it against the new list: recheck).
		l.notes = append(l.notes, note)
	}
	l.toConfirm = append(l.toConfirm, s.ch.binding)
	out.event(s.id, "resumed", "%s", l.describe(s))
	l.recordEvidence(now, out, s)
	l.forwardOpen(now, s, out)
	return nil
}

// holdResume keeps a resumption that arrives while the link to the CA is
// being re-established (the handshake is under way, the first sync has
// not come) until that sync. The sync says whether the CA restarted: if
// it did, it forgot the sessions the LAG's tickets descend from, and
// admitting the vehicle on its old ticket now would only have the CA
// terminate it as unknown once the note reaches it, leaving the vehicle
// unserved; held, the vehicle is refused at once with ErrUnknown and
// authenticates in full. If the CA did not restart, the resumption is
// admitted as usual. A link that goes down again, or a sync that does
// not come within ResumeHoldMax, decides it as with the link down.
func (l *LAG) holdResume(now time.Time, s *lagSession, m *resumeReq, out *Output) {
	s.state = lsResumeHeld
	l.heldResumes = append(l.heldResumes, heldResume{s: s, m: m, now: now})
	out.event(s.id, "resume-held", "resumption held until the first sync of the CA link being re-established")
}

// releaseResumes decides the held resumptions (all of them, or those held
// since before the given time): admitted or refused as resume decides now.
func (l *LAG) releaseResumes(now time.Time, heldBefore time.Time, out *Output) {
	keep := l.heldResumes[:0]
	for _, h := range l.heldResumes {
		if !heldBefore.IsZero() && !h.now.Before(heldBefore) {
			keep = append(keep, h)
			continue
		}
		if l.sessions[h.s.id] != h.s || h.s.state != lsResumeHeld {
			continue // closed meanwhile
		}
		h.s.state = lsAwaitAuth
		if err := l.resume(now, h.s, h.m, out); err != nil {
			l.reject(out, h.s, err)
		}
	}
	clear(l.heldResumes[len(keep):])
	l.heldResumes = keep
}

// originRevoked reports whether the credential of a ticket chain's origin
// session would now be refused as revoked: its pseudonym is on the
// revocation list, or its ring holds a revoked member. So a revocation
// voids the revoked vehicle's tickets (and those of sessions signed with a
// ring it was in, which could be its own) and leaves every other vehicle's
// ticket valid: voiding all tickets would make every vehicle of the LAG pay
// a full authentication for one vehicle's revocation. The LAG learns
// nothing new by it: it held the origin's credential and the list already.
// The CA keeps a revoked vehicle's serials on the list as long as a ticket
// from a session with them can live (CA.listedUntil).
func (l *LAG) originRevoked(o *originRec) bool {
	switch c := o.cred; {
	case c == nil:
		return false
	case c.cert != nil:
		return l.crl[c.cert.Serial]
	case c.rr != nil:
		g := l.groups[c.rr.Group]
		if g == nil {
			return false
		}
		for _, m := range c.rr.Members {
			if g.revoked[m] {
				return true
			}
		}
	}
	return false
}

// ticketPlain is what a resumption ticket holds, sealed under the LAG's
// ticket key: only the LAG that issued it can read it.
type ticketPlain struct {
	Secret   [32]byte
	Origin   [32]byte
	IssuedAt int64
	NotAfter int64
}

func (l *LAG) issueTicket(now time.Time, origin [32]byte, notAfter int64) ([]byte, [32]byte, error) {
	secret, err := random32()
	if err != nil {
		return nil, secret, err
	}
	if l.ticketKey == nil {
		return nil, secret, fmt.Errorf("%w: resumption disabled", ErrNotPermitted)
	}
	nonce := make([]byte, 12, 12+32+32+8+8+16)
	if _, err := rand.Read(nonce); err != nil {
		return nil, secret, err
	}
	pt := wire.NewBuilder(nil).Fixed(secret[:]).Fixed(origin[:]).I64(now.Unix()).I64(notAfter).Out()
	return l.ticketKey.Seal(nonce, nonce, pt, l.ticketAAD()), secret, nil
}

func (l *LAG) ticketAAD() []byte {
	return wire.NewBuilder([]byte("gridveil/ticket/v1\x00")).String(l.cfg.Cert.LAGID).Out()
}

func (l *LAG) openTicket(t []byte) (*ticketPlain, error) {
	if l.ticketKey == nil {
		return nil, fmt.Errorf("%w: resumption disabled", ErrNotPermitted)
	}
	if len(t) < 12+16 {
		return nil, fmt.Errorf("%w: ticket", ErrNoCredential)
	}
	pt, err := l.ticketKey.Open(nil, t[:12], t[12:], l.ticketAAD())
	if err != nil {
		return nil, fmt.Errorf("%w: ticket does not open", ErrNoCredential)
	}
	r := wire.NewReader(pt)
	tp := new(ticketPlain)
	r.FixedInto(tp.Secret[:])
	r.FixedInto(tp.Origin[:])
	tp.IssuedAt, tp.NotAfter = r.I64(), r.I64()
	if err := r.Finish(); err != nil {
		return nil, fmt.Errorf("%w: ticket: %w", ErrMalformed, err)
	}
	return tp, nil
}

// ReceiveCA processes one frame from the CA link. An error means the link
// must be closed (and CADisconnected called).
func (l *LAG) ReceiveCA(now time.Time, frame []byte) (Output, error) {
	var out Output
	if l.link == nil || len(frame) == 0 {
		return out, fmt.Errorf("%w: no link", ErrState)
	}
	switch frame[0] {
	case frameReject:
		if len(frame) == 2 {
			return out, &RejectedError{By: "ca", Reason: errOf(frame[1])}
		}
		return out, fmt.Errorf("%w: reject frame", ErrMalformed)
	case frameHS2:
		if _, err := l.link.read(frame[1:]); err != nil {
			return out, err
		}
		// Our first transport message confirms the keys to the CA, which
		// then answers with the sync. It says which sessions the LAG holds,
		// so that the CA ends the others (after a restart of the LAG, all
		// of them); the resumptions admitted while the link was down
		// follow, for the CA to check.
		b, err := l.link.seal(encode(&syncReqMsg{Held: l.held(), HasHave: true, CRLVersion: l.crlVersion, Have: l.have()}))
		if err != nil {
			return out, err
		}
		out.send(ToCA, b)
		for _, n := range l.notes {
			b, err := l.link.seal(encode(n))
			if err != nil {
				return out, err
			}
			out.send(ToCA, b)
		}
		l.notes = nil
		return out, nil
	case frameData:
	default:
		return out, fmt.Errorf("%w: frame type %d on the link", ErrState, frame[0])
	}
	pt, err := l.link.open(frame[1:])
	if err != nil {
		return out, err
	}
	m, err := parseAny(pt)
	if err != nil {
		return out, err
	}
	switch m := m.(type) {
	case *rejectMsg:
		return out, &RejectedError{By: "ca", Reason: errOf(m.Code)}
	case *syncMsg:
		l.sync(now, m, &out)
	case *groupKeysMsg:
		l.groupKeys(m)
	case *crlChunkMsg:
		if len(l.crlPending)+len(m.Serials) > maxList {
			return out, fmt.Errorf("%w: a revocation list of more than %d serials", ErrMalformed, maxList)
		}
		l.crlPending = append(l.crlPending, m.Serials...)
	case *groupAddMsg:
		g := l.groups[m.Group]
		if g == nil {
			g = newGroupKeys(nil, nil)
			l.groups[m.Group] = g
		}
		if int64(m.Index) == int64(len(g.keys)) {
			g.add(m.Key)
		}
	case *verdictsMsg:
		for _, v := range m.Verdicts {
			l.verdict(now, v, &out)
		}
	case *terminateMsg:
		if id, ok := l.byBinding[m.Binding]; ok && l.sessions[id] != nil {
			s := l.sessions[id]
			if errOf(m.Code) == ErrUnknown {
				// The CA does not know the session (it restarted): a ticket
				// from it, or from its chain, would only be terminated again.
				delete(l.origins, m.Binding)
				if s.resumed {
					delete(l.origins, s.origin)
				}
			}
			l.reject(&out, s, fmt.Errorf("terminated by the CA: %w", errOf(m.Code)))
		}
	case *dischargeReqMsg:
		return out, l.discharge(now, m, &out)
	case *replyFwdMsg:
		l.forwardReply(m, &out)
	default:
		return out, fmt.Errorf("%w: message %#x from the CA", ErrState, m.kind())
	}
	return out, nil
}

// groupKeys takes a chunk of a group's list: the list from its first key
// (From 0: a list the LAG did not hold, replaced), or the keys that follow
// those it holds. A chunk that fits neither is dropped, and the sync that
// follows finds the list short (and asks again).
func (l *LAG) groupKeys(m *groupKeysMsg) {
	g := l.groups[m.Group]
	switch {
	case m.From == 0:
		g = newGroupKeys(nil, nil)
		l.groups[m.Group] = g
	case g == nil || int(m.From) != len(g.keys):
		return
	}
	for _, k := range m.Keys {
		g.add(k)
	}
}

// GroupSizes returns how many keys of each group's list the LAG holds.
func (l *LAG) GroupSizes() map[string]int {
	out := make(map[string]int, len(l.groups))
	for g, k := range l.groups {
		out[g] = len(k.keys)
	}
	return out
}

// have says how much of each group's list the LAG holds, for the CA to
// send only the rest.
func (l *LAG) have() []groupHave {
	out := make([]groupHave, 0, len(l.groups))
	for name, g := range l.groups {
		out = append(out, groupHave{Group: name, Version: l.groupVer[name], Count: uint32(len(g.keys))})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Group < out[j].Group })
	return out
}

// held lists the sessions the LAG holds for the CA (admitted, or
// permitted and waiting for the grant), but those whose resumption note is
// still queued: the note tells the CA about them.
func (l *LAG) held() [][32]byte {
	queued := map[[32]byte]bool{}
	for _, n := range l.notes {
		queued[n.Binding] = true
	}
	var out [][32]byte
	for _, s := range l.sortedSessions() {
		if (s.state == lsActive || s.state == lsAwaitGrant) && !queued[s.ch.binding] {
			out = append(out, s.ch.binding)
		}
	}
	return out
}

// recheck ends the sessions that the revocation list now refuses: a
// resumption whose origin credential is revoked, a pseudonym session
// whose serial is listed. (An LSAG session's vehicle is known to the CA
// only, which ends it: CA.RevokeBV, CA.confirmLink.) It runs after every
// sync, so a vehicle revoked while the link was down does not keep a
// session it got by ticket meanwhile.
func (l *LAG) recheck(out *Output) {
	for _, s := range l.sortedSessions() {
		if s.state != lsActive && s.state != lsAwaitGrant || s.cred == nil {
			continue
		}
		revoked := false
		if s.resumed {
			if o := l.origins[s.origin]; o != nil {
				revoked = l.originRevoked(o)
			} else {
				revoked = l.originRevoked(&originRec{cred: s.cred})
			}
		} else if s.cred.cert != nil {
			revoked = l.crl[s.cred.cert.Serial]
		}
		if revoked {
			l.reject(out, s, fmt.Errorf("%w: the revocation list synced after admission lists this session's credential", ErrRevoked))
		}
	}
}

func (l *LAG) sync(now time.Time, m *syncMsg, out *Output) {
	resync := false
	defer func() {
		if resync {
			l.toCA(out, &syncReqMsg{HasHave: true, CRLVersion: l.crlVersion, Have: l.have()})
		}
	}()
	if m.Instance != l.caInstance {
		if l.caInstance != [16]byte{} && len(l.origins) > 0 {
			out.event(ToCA, "ca-restarted", "the CA restarted and forgot its sessions: %d resumption origins voided (their vehicles authenticate in full)", len(l.origins))
			l.origins = map[[32]byte]*originRec{}
		}
		l.caInstance = m.Instance
	}
	pending := l.crlPending
	l.crlPending = nil
	switch {
	case m.CRLSame:
	case len(pending) != int(m.CRLCount):
		// A chunk was lost: keep the list held, and ask again saying
		// which version that is.
		out.fail(ToCA, "sync", fmt.Errorf("%w: the sync names %d revoked serials, the chunks brought %d; asking again", ErrState, m.CRLCount, len(pending)))
		resync = true
	case m.CRLVersion >= l.crlVersion:
		l.crl = make(map[[16]byte]bool, len(pending))
		for _, s := range pending {
			l.crl[s] = true
		}
		l.crlVersion = m.CRLVersion
	}
	for _, g := range m.Groups {
		gk := l.groups[g.Group]
		if gk == nil {
			gk = newGroupKeys(nil, nil)
			l.groups[g.Group] = gk
		}
		if len(gk.keys) != int(g.Count) {
			// The chunks and additions did not bring the list to the
			// length the CA names (one was lost): keep the keys it holds
			// (they are the list's first, unless it holds more), and ask
			// again saying what it holds.
			if len(gk.keys) > int(g.Count) {
				delete(l.groups, g.Group)
			}
			delete(l.groupVer, g.Group)
			out.fail(ToCA, "sync", fmt.Errorf("%w: group %s: the sync names %d keys, the LAG holds %d; asking again", ErrState, g.Group, g.Count, len(gk.keys)))
			resync = true
			continue
		}
		gk.revoked = make(map[uint32]bool, len(g.Revoked))
		for _, i := range g.Revoked {
			gk.revoked[i] = true
		}
		l.groupVer[g.Group] = g.Version
	}
	for _, sb := range m.Scopes {
		if sb.LAGID == l.cfg.Cert.LAGID && verify(l.cfg.CA.sign(), domScope, sb.body(), sb.Sig) && parseBase(sb.Base) == nil {
			l.scopes[sb.Epoch] = sb
		}
	}
	for e := range l.scopes {
		if e < Epoch(now)-1 {
			delete(l.scopes, e)
		}
	}
	first := !l.linkReady
	l.linkReady = true
	l.recheck(out)
	l.releaseResumes(now, time.Time{}, out)
	out.event(ToCA, "synced", "revocation list v%d (%d serials), %d groups, linking bases to epoch %d", l.crlVersion, len(l.crl), len(l.groups), Epoch(now)+scopesAhead)
	if first {
		// Resumptions decided while the link was not ready (a hold that
		// ran out) are reported now.
		for _, n := range l.notes {
			l.toCA(out, n)
		}
		l.notes = nil
		out.merge(l.sendAwaiting(Output{}))
	}
}

func (l *LAG) verdict(now time.Time, v verdict, out *Output) {
	id, ok := l.byBinding[v.Binding]
	s := l.sessions[id]
	if !ok || s == nil || s.state != lsVerifying {
		return
	}
	if v.Code != 0 {
		l.reject(out, s, &RejectedError{By: "ca", Reason: errOf(v.Code)})
		return
	}
	// The permit came over the authenticated link; the vehicle checks the
	// CA's signature on it.
	p, err := ParsePermit(v.Permit)
	if err == nil && (p.Binding != s.ch.binding || p.LAGID != l.cfg.Cert.LAGID) {
		err = fmt.Errorf("%w: permit for another session", ErrState)
	}
	if err != nil {
		l.reject(out, s, err)
		return
	}
	s.permit, s.permitRaw = p, v.Permit
	pm := &permitMsg{Permit: v.Permit}
	if p.Home && p.Service.Has(ServiceResume) && l.cfg.TicketKey != [32]byte{} {
		notAfter := min(now.Add(l.cfg.TicketLifetime).Unix(), p.NotAfter)
		if pm.Ticket, pm.TicketSecret, err = l.issueTicket(now, s.ch.binding, notAfter); err != nil {
			l.reject(out, s, err)
			return
		}
		l.origins[s.ch.binding] = &originRec{cred: s.cred, notAfter: notAfter}
	}
	s.state = lsAwaitGrant
	l.toBV(out, s, pm)
}

func (l *LAG) discharge(now time.Time, m *dischargeReqMsg, out *Output) error {
	d, err := ParseDischargeRequest(m.Request)
	if err != nil {
		return err
	}
	if !verify(l.cfg.CA.sign(), domDischarge, d.body(), d.Sig) || d.LAGID != l.cfg.Cert.LAGID {
		return fmt.Errorf("%w: discharge request", ErrBadSignature)
	}
	if _, dup := l.requests[d.ID]; dup {
		return nil
	}
	l.requests[d.ID] = d
	n := 0
	for _, s := range l.sortedSessions() {
		if l.offer(now, s, d, out) {
			n++
		}
	}
	out.event(ToCA, "discharge-request", "request %x (%s, %d W) forwarded to %d storage/supply sessions", d.ID[:4], d.Mode, d.PowerW, n)
	return nil
}

// maxAnswers bounds the answers one session may give to one request (it
// may change its mind, not flood the CA).
const maxAnswers = 4

// offer forwards an open request to a session that may discharge and has
// not had it yet.
func (l *LAG) offer(now time.Time, s *lagSession, d *DischargeRequest, out *Output) bool {
	if _, had := s.pending[d.ID]; had || s.state != lsActive || !s.role.discharges() || !s.service().Has(ServiceDischarge) || now.Unix() >= d.End {
		return false
	}
	s.pending[d.ID] = 0
	req := d.Marshal()
	l.toBV(out, s, &dischargeMsg{Request: req, MAC: mac(s.opKey, "discharge", s.ch.binding[:], req)})
	return true
}

// forwardOpen gives a newly admitted session the requests still open.
func (l *LAG) forwardOpen(now time.Time, s *lagSession, out *Output) {
	ids := make([][16]byte, 0, len(l.requests))
	for id := range l.requests {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return string(ids[i][:]) < string(ids[j][:]) })
	for _, id := range ids {
		l.offer(now, s, l.requests[id], out)
	}
}

func (l *LAG) sortedSessions() []*lagSession {
	ss := make([]*lagSession, 0, len(l.sessions))
	for _, s := range l.sessions {
		ss = append(ss, s)
	}
	sort.Slice(ss, func(i, j int) bool { return ss[i].id < ss[j].id })
	return ss
}

func (l *LAG) forwardReply(m *replyFwdMsg, out *Output) {
	rep, err := parseCAReply(m.Reply)
	if err != nil {
		out.fail(ToCA, "reply", err)
		return
	}
	if m.HasAgg {
		l.aggregate(m, out)
	}
	id, ok := l.byBinding[rep.Binding]
	s := l.sessions[id]
	if !ok || s == nil || s.state != lsActive {
		return
	}
	label := "ack"
	kind := uint8(msgAck)
	if m.k == msgStatusReplyFwd {
		label, kind = "status", msgStatusReply
	}
	l.toBV(out, s, &replyMsg{k: kind, Reply: m.Reply, MAC: mac(s.opKey, label, s.ch.binding[:], m.Reply)})
}

func (l *LAG) aggregate(m *replyFwdMsg, out *Output) {
	if m.k == msgAckFwd {
		l.dischAgg[m.Agg.ReqID] = m.Agg
		out.event(ToCA, "aggregate", "request %x: %d vehicles answered, %d W agreed in total (who agreed is unknown to the LAG)", m.Agg.ReqID[:4], m.Agg.Count, m.Agg.TotalW)
		if d := l.requests[m.Agg.ReqID]; d != nil && d.Mode == Distributed {
			l.poolWh = m.Agg.TotalW * (d.End - d.Start) / 3600
		}
		return
	}
	l.statusAgg = m.Agg
	out.event(ToCA, "aggregate", "status of %d vehicles: %d Wh in total", m.Agg.Count, m.Agg.TotalWh)
}

// AllocateV2V shares the station's pool of discharged energy (distributed
// discharging) equally among active load vehicles. Each load vehicle learns
// only its own share; no message names a supplier, and the LAG never knew
// which supplier agreed.
func (l *LAG) AllocateV2V(reqID [16]byte) Output {
	var out Output
	var loads []*lagSession
	for _, s := range l.sortedSessions() {
		if s.state == lsActive && s.role == RoleLoad {
			loads = append(loads, s)
		}
	}
	if len(loads) == 0 || l.poolWh <= 0 {
		return out
	}
	share := l.poolWh / int64(len(loads))
	for _, s := range loads {
		s.v2vWh += share
		m := &v2vMsg{ReqID: reqID, EnergyWh: uint32(min(share, 1<<31))}
		m.MAC = mac(s.opKey, "v2v", s.ch.binding[:], m.ReqID[:], wire.NewBuilder(nil).U32(m.EnergyWh).Out())
		l.toBV(&out, s, m)
	}
	out.event(ToCA, "v2v", "pool of %d Wh shared among %d load sessions", l.poolWh, len(loads))
	l.poolWh = 0
	return out
}

// ConfirmBatch confirms every session admitted since the last batch with
// one signature over the Merkle root of their bindings.
func (l *LAG) ConfirmBatch(now time.Time) Output {
	var out Output
	var leaves [][32]byte
	var ss []*lagSession
	for _, b := range l.toConfirm {
		if id, ok := l.byBinding[b]; ok && l.sessions[id].state == lsActive {
			leaves = append(leaves, b)
			ss = append(ss, l.sessions[id])
		}
	}
	l.toConfirm = nil
	if len(leaves) == 0 {
		return out
	}
	l.batchSeq++
	root, paths := merkleTree(leaves)
	m := batchMsg{Seq: l.batchSeq, Time: now.Unix(), Count: uint32(len(leaves)), Root: root}
	m.Sig = sign(l.cfg.SignKey, domBatch, m.signed(l.cfg.Cert.LAGID))
	for i, s := range ss {
		bm := m
		bm.Index, bm.Path = uint32(i), paths[i]
		s.confirmed = true
		l.toBV(&out, s, &bm)
	}
	out.event(ToCA, "batch", "batch %d: %d sessions confirmed with one signature", l.batchSeq, len(leaves))
	return out
}

// Tick does periodic work: it ends sessions whose permit (or ticket chain)
// expired, asks the CA for linking bases before they run out, and forgets
// spent tickets and closed requests.
func (l *LAG) Tick(now time.Time) Output {
	var out Output
	if len(l.heldResumes) > 0 {
		l.releaseResumes(now, now.Add(-ResumeHoldMax), &out)
	}
	for _, s := range l.sortedSessions() {
		if s.state != lsActive {
			continue
		}
		end := int64(0)
		if s.permit != nil {
			end = s.permit.NotAfter
		} else if o := l.origins[s.origin]; o != nil {
			end = o.notAfter
		}
		if end != 0 && now.Unix() >= end {
			l.reject(&out, s, fmt.Errorf("%w: session permit", ErrExpired))
		}
	}
	if l.linkReady {
		if _, ok := l.scopes[Epoch(now)+2]; !ok {
			l.toCA(&out, &syncReqMsg{})
		}
	}
	t := now.Unix()
	for k, exp := range l.usedTickets {
		if exp <= t {
			delete(l.usedTickets, k)
		}
	}
	for k, o := range l.origins {
		if o.notAfter <= t {
			delete(l.origins, k)
		}
	}
	for k, d := range l.requests {
		if d.End <= t {
			delete(l.requests, k)
			delete(l.dischAgg, k)
		}
	}
	return out
}

// LAGSessionView is everything a LAG knows about one session. It holds no
// identity, battery state or discharge answer: the LAG never has them.
type LAGSessionView struct {
	ID            ConnID
	Binding       string
	Scheme        Scheme
	Group         string
	Role          Role
	Home          bool
	Service       Service
	Resumed       bool
	CredentialRef string // pseudonym serial or LSAG link tag
	Active        bool
	Confirmed     bool // in a signed batch confirmation
	Answers       int  // sealed discharge answers forwarded
	Reports       int  // sealed pseudo-statuses forwarded
	V2VWh         int64
}

// Sessions lists the LAG's sessions that got past the credential check.
func (l *LAG) Sessions() []LAGSessionView {
	var out []LAGSessionView
	for _, s := range l.sortedSessions() {
		if s.cred == nil {
			continue
		}
		v := LAGSessionView{ID: s.id, Binding: hex.EncodeToString(s.ch.binding[:]), Scheme: s.cred.scheme, Group: s.cred.group,
			Role: s.role, Resumed: s.resumed, Service: s.service(), CredentialRef: hex.EncodeToString(s.cred.ref[:]),
			Active: s.state == lsActive, Confirmed: s.confirmed, Answers: s.answers, Reports: s.reports, V2VWh: s.v2vWh}
		v.Home = s.resumed || (s.permit != nil && s.permit.Home)
		out = append(out, v)
	}
	return out
}

// DischargeAggregate is the latest aggregate of answers to a request the
// CA released to this LAG.
func (l *LAG) DischargeAggregate(reqID [16]byte) (Aggregate, bool) {
	a, ok := l.dischAgg[reqID]
	return a, ok
}

// StatusAggregate is the latest batch of status reports the CA summed for
// this LAG.
func (l *LAG) StatusAggregate() Aggregate { return l.statusAgg }
