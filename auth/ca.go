package auth

import (
	"crypto/ed25519"
	"crypto/hpke"
	"crypto/rand"
	"encoding/hex"
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

// CAConfig tunes the central authority. Zero values take the defaults.
type CAConfig struct {
	LAGLifetime time.Duration // LAG certificates; default 30 days
	// PseudonymLifetime is the length of the validity periods of
	// pseudonym certificates (default 24 h, at least a minute): a pseudonym
	// is valid in the period, aligned on the Unix epoch, in which it was
	// issued (plus PseudonymSkew either side), so that its window does not
	// tell when its vehicle enrolled.
	PseudonymLifetime time.Duration
	PermitLifetime    time.Duration // permits; default 12 h
	// AggregateMin is the fewest vehicles an aggregate the CA tells a LAG
	// may cover (k-anonymity of aggregates); default 3.
	AggregateMin int
	// AutoDischarge makes the CA ask a LAG's storage and supply vehicles
	// to discharge whenever one of them reports fully charged there.
	AutoDischarge   bool
	DischargePowerW uint32        // asked of each vehicle; default 7000
	DischargeWindow time.Duration // default 1 h
	DischargeMode   Mode          // default Centralized
	// MaxPseudonymsPerPeriod caps the pseudonym certificates one
	// identity may obtain in one validity period (PseudonymLifetime);
	// default 2000. It bounds what one enrolled identity can add to the
	// CA's state; new identities need a credential each (admission.go).
	MaxPseudonymsPerPeriod int
	// SharedToken keeps admitting new identities (vehicles and LAGs)
	// with the shared enrolment token of earlier versions (CAKeys.
	// EnrolToken), beside per-identity credentials: a migration setting,
	// off by default. Off, a party that presents the token is refused with
	// ErrSharedToken.
	SharedToken bool
	// AdminKey is the X25519 public key of the operator who may trace and
	// revoke over the CA's listener (Noise IK, see Admin); zero refuses
	// every admin connection.
	AdminKey [32]byte
}

func (c *CAConfig) defaults() {
	if c.LAGLifetime == 0 {
		c.LAGLifetime = 30 * 24 * time.Hour
	}
	if c.PseudonymLifetime == 0 {
		c.PseudonymLifetime = 24 * time.Hour
	}
	if c.PermitLifetime == 0 {
		c.PermitLifetime = 12 * time.Hour
	}
	if c.AggregateMin == 0 {
		c.AggregateMin = 3
	}
	if c.DischargePowerW == 0 {
		c.DischargePowerW = 7000
	}
	if c.DischargeWindow == 0 {
		c.DischargeWindow = time.Hour
	}
	if c.DischargeMode == 0 {
		c.DischargeMode = Centralized
	}
	if c.MaxPseudonymsPerPeriod == 0 {
		c.MaxPseudonymsPerPeriod = 2000
	}
}

// Incident is a clone the CA detected: one vehicle's credential at two
// sessions at once.
type Incident struct {
	Time   time.Time
	RealID string
	LAGs   []string // where the vehicle was already active, then where it appeared
	Scheme Scheme
}

type bvRecord struct {
	RealID      string
	Group       string
	IdentityKey [32]byte
	RingKey     [32]byte
	RingIndex   uint32
	Revoked     bool
	active      map[[32]byte]string // session binding -> LAG
	EnergyWh    int64               // billing: energy reported through status
	Discharged  int64               // billing: discharge answers agreed
}

type serialInfo struct {
	bv       int
	notAfter int64
	used     bool
}

type lagRecord struct {
	cert    LAGCert
	revoked bool
	link    ConnID // 0 when not linked
	// sent is how much of each group's list the LAG holds on its link:
	// what it said at the link's start (syncReqMsg.Have), and what the CA
	// sent it since. A sync carries only the rest.
	sent map[string]groupHave
	// crlSent is the revocation list version the LAG holds, if known.
	crlSent    uint64
	crlSentSet bool
}

type caSession struct {
	binding  [32]byte
	lag      string
	bv       int
	role     Role
	cred     *credMaterial
	resumed  bool
	statuses uint32
	// notAfter ends the session's lease: its permit's (or, resumed, its
	// ticket chain's) end, after which Expire forgets it.
	notAfter int64
}

type dischargeState struct {
	req     *DischargeRequest
	answers map[[32]byte]Decision
	fresh   map[[32]byte]bool // sessions whose answer changed since the last aggregate
}

// aggState gathers status reports at one LAG until AggregateMin sessions
// contributed; then their sum is released and the batch starts afresh, so
// that no two releases differ by one vehicle's report.
type aggState struct {
	batch   map[[32]byte]bool
	totalWh int64
}

type caConnKind uint8

const (
	connNew caConnKind = iota
	connEnrol
	connLink
	connAdmin
)

type caConn struct {
	kind      caConnKind
	ch        *channel
	lag       string
	confirmed bool // the LAG sent a transport message: not a replayed handshake
}

// CA is the central authority's protocol core: enrolment of vehicles and
// LAGs, verification of every session with a permit, tracing, revocation,
// discharge requests and the vehicles' sealed answers and statuses. It is a
// pure state machine: the caller feeds it frames with the current time and
// sends what it returns. It is not safe for concurrent use.
type CA struct {
	keys   *CAKeys
	static staticKey
	pub    CAPublic
	cfg    CAConfig
	trace  hpke.PrivateKey
	bvs    []*bvRecord
	byReal map[string]int
	byRing map[[32]byte]int
	// serials maps every pseudonym the CA certified to its vehicle.
	serials    map[[16]byte]*serialInfo
	groups     map[string]*groupKeys
	groupVer   map[string]uint64
	groupOwner map[string][]int
	lags       map[string]*lagRecord
	byNoise    map[[32]byte]string
	lagSerial  uint64
	crlVersion uint64
	revokedAt  int64
	sessions   map[[32]byte]*caSession
	requests   map[[16]byte]*dischargeState
	statusAgg  map[string]*aggState
	incidents  []Incident
	// issued counts, per vehicle, the pseudonyms certified for the period
	// ending at notAfter (the latest period it enrolled in): rebuilt from
	// the listed serials on restore, so the cap survives restarts.
	issued   map[int]issuedCount
	conns    map[ConnID]*caConn
	nextConn ConnID
	// dirty is what changed in the durable state since TakeChanges.
	dirty dirtySet
	// creds are the enrolment credentials by the hash of their secret,
	// credByName each name's latest (admission.go).
	creds      map[[32]byte]*admissionCred
	credByName map[credName][32]byte
	credSeq    uint64
	// chains is each group list's hash chain (groupHead).
	chains map[string][32]byte
	// instance is random for each CA started (NewCA, RestoreCA*): its
	// sessions are not durable, and a LAG that sees a new instance in its
	// sync voids its resumption tickets.
	instance [16]byte
}

// NewCA starts a CA with no registrations.
func NewCA(keys *CAKeys, cfg CAConfig) (*CA, error) {
	cfg.defaults()
	if cfg.PseudonymLifetime < time.Minute {
		return nil, fmt.Errorf("CA config: pseudonym lifetime %v is below a minute", cfg.PseudonymLifetime)
	}
	if keys == nil || keys.Trace == nil || len(keys.Sign) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("%w: CA keys", ErrMalformed)
	}
	tr, err := hpke.NewDHKEMPrivateKey(keys.Trace)
	if err != nil {
		return nil, fmt.Errorf("CA tracing key: %w", err)
	}
	static, err := newStaticKey(keys.Noise)
	if err != nil {
		return nil, err
	}
	var instance [16]byte
	if _, err := rand.Read(instance[:]); err != nil {
		return nil, err
	}
	return &CA{
		keys: keys, static: static, pub: keys.Public(), cfg: cfg, trace: tr, instance: instance,
		byReal: map[string]int{}, byRing: map[[32]byte]int{}, serials: map[[16]byte]*serialInfo{},
		groups: map[string]*groupKeys{}, groupVer: map[string]uint64{}, groupOwner: map[string][]int{},
		lags: map[string]*lagRecord{}, byNoise: map[[32]byte]string{},
		sessions: map[[32]byte]*caSession{}, requests: map[[16]byte]*dischargeState{},
		statusAgg: map[string]*aggState{}, conns: map[ConnID]*caConn{}, nextConn: 1, issued: map[int]issuedCount{},
		creds: map[[32]byte]*admissionCred{}, credByName: map[credName][32]byte{}, chains: map[string][32]byte{},
	}, nil
}

// Public returns the CA's public keys.
func (c *CA) Public() CAPublic { return c.pub }

// Open registers a new incoming connection.
func (c *CA) Open() ConnID {
	id := c.nextConn
	c.nextConn++
	c.conns[id] = &caConn{}
	return id
}

// Authenticated reports whether connection id belongs to a party the CA
// knows: a certified LAG whose link is confirmed, or the operator. An
// enrolment connection never is (anyone holding the shared token may
// enrol), so the shell keeps it under its limits for unauthenticated
// peers for its whole life.
func (c *CA) Authenticated(id ConnID) bool {
	cn := c.conns[id]
	if cn == nil {
		return false
	}
	switch cn.kind {
	case connLink:
		return cn.confirmed
	case connAdmin:
		return cn.ch != nil && cn.ch.ready()
	}
	return false
}

// Close forgets a connection. A LAG's sessions stay active: the LAG reports
// their end when its link is back.
func (c *CA) Close(id ConnID) {
	if cn := c.conns[id]; cn != nil && cn.kind == connLink {
		if l := c.lags[cn.lag]; l != nil && l.link == id {
			l.link = 0
		}
	}
	delete(c.conns, id)
}

// Receive processes one frame from a connection. An error means the
// connection must be closed after sending the output's frames.
func (c *CA) Receive(now time.Time, id ConnID, frame []byte) (out Output, err error) {
	cn := c.conns[id]
	if cn == nil {
		return out, fmt.Errorf("%w: connection %d", ErrUnknown, id)
	}
	defer func() {
		if err != nil {
			out.fail(id, "rejected", err)
			out.Close = append(out.Close, id)
			if cn.ch != nil && cn.ch.ready() {
				if b, e := cn.ch.seal(encode(&rejectMsg{Code: codeOf(err)})); e == nil {
					out.send(id, b)
				}
			} else {
				out.send(id, RejectFrame(err))
			}
		}
	}()
	if len(frame) == 0 {
		return out, fmt.Errorf("%w: empty frame", ErrMalformed)
	}
	switch cn.kind {
	case connNew:
		return c.handshake(now, id, cn, frame)
	}
	if frame[0] != frameData {
		return out, fmt.Errorf("%w: frame type %d after the handshake", ErrState, frame[0])
	}
	pt, err := cn.ch.open(frame[1:])
	if err != nil {
		return out, err
	}
	m, err := parseAny(pt)
	if err != nil {
		return out, err
	}
	switch cn.kind {
	case connEnrol:
		return c.enrol(now, id, cn, m)
	case connAdmin:
		return c.admin(now, id, m)
	}
	return c.fromLAG(now, id, cn, m)
}

func (c *CA) handshake(now time.Time, id ConnID, cn *caConn, frame []byte) (Output, error) {
	var out Output
	var err error
	switch frame[0] {
	case frameEnrol:
		cn.kind = connEnrol
		cn.ch, err = newChannel(noise.HandshakeNK, false, []byte(prologueEnrol), c.static, nil)
	case frameLink:
		cn.kind = connLink
		cn.ch, err = newChannel(noise.HandshakeIK, false, []byte(prologueLink), c.static, nil)
	case frameAdmin:
		cn.kind = connAdmin
		cn.ch, err = newChannel(noise.HandshakeIK, false, []byte(prologueAdmin), c.static, nil)
	default:
		return out, fmt.Errorf("%w: first frame of type %d", ErrState, frame[0])
	}
	if err != nil {
		return out, err
	}
	if _, err := cn.ch.read(frame[1:]); err != nil {
		return out, err
	}
	if cn.kind == connLink {
		// The IK handshake has told us the LAG's static key: it must be a
		// certified, unrevoked, unexpired LAG.
		lagID, ok := c.byNoise[[32]byte(cn.ch.hs.PeerStatic())]
		l := c.lags[lagID]
		if !ok || l == nil {
			return out, fmt.Errorf("%w: unknown LAG static key", ErrUntrusted)
		}
		if l.revoked {
			return out, fmt.Errorf("%w: LAG %q", ErrRevoked, lagID)
		}
		if err := l.cert.Verify(c.pub, now); err != nil {
			return out, err
		}
		cn.lag = lagID
	}
	if cn.kind == connAdmin {
		// Only the operator's key administers: not a LAG's, not anyone's.
		if ps := cn.ch.hs.PeerStatic(); c.cfg.AdminKey == [32]byte{} || len(ps) != 32 || [32]byte(ps) != c.cfg.AdminKey {
			return out, fmt.Errorf("%w: administration needs the CA's admin key", ErrNotPermitted)
		}
	}
	msg, err := cn.ch.write(nil)
	if err != nil {
		return out, err
	}
	out.send(id, append([]byte{frameHS2}, msg...))
	// A link becomes the LAG's only with its first transport message (key
	// confirmation): the first IK message alone can be replayed by anyone,
	// who must not divert the pushes meant for the LAG.
	return out, nil
}

// confirmLink makes a connection the LAG's link once the LAG proved it
// holds the session keys, and brings the LAG up to date.
//
// It also reconciles the LAG's sessions with what the LAG says it holds
// (held): a LAG that restarted holds none, and one whose link was down
// may have ended some without being able to tell. The CA ends every
// session of the LAG that is not held (else the vehicle would be refused
// as a clone at its next session), and terminates the held ones it does
// not know (it restarted: sessions are not durable) or whose vehicle is
// revoked (the revocation's terminate may have found the link down).
func (c *CA) confirmLink(now time.Time, id ConnID, cn *caConn, held [][32]byte, have []groupHave, crl uint64, crlKnown bool, out *Output) error {
	cn.confirmed = true
	l := c.lags[cn.lag]
	l.link = id
	l.sent = make(map[string]groupHave, len(have))
	for _, h := range have {
		l.sent[h.Group] = h
	}
	l.crlSent, l.crlSentSet = crl, crlKnown
	if err := c.sendSync(out, id, now, cn.lag); err != nil {
		return err
	}
	holds := make(map[[32]byte]bool, len(held))
	for _, b := range held {
		holds[b] = true
	}
	ended := 0
	for b, s := range c.sessions {
		if s.lag != cn.lag || holds[b] {
			continue
		}
		if r := c.bvs[s.bv]; r.active[b] != "" {
			delete(r.active, b)
			ended++
		}
	}
	terminated := 0
	for _, b := range held {
		s := c.sessions[b]
		code := uint8(0)
		switch {
		case s == nil || s.lag != cn.lag:
			code = codeOf(ErrUnknown)
		case c.bvs[s.bv].Revoked:
			code = codeOf(ErrRevoked)
			delete(c.bvs[s.bv].active, b)
		}
		if code != 0 {
			terminated++
			if err := c.sendTo(out, id, &terminateMsg{Binding: b, Code: code}); err != nil {
				return err
			}
		}
	}
	if ended+terminated > 0 {
		out.event(id, "lag-reconciled", "LAG %q holds %d sessions: %d others it no longer holds ended, %d unknown or revoked terminated", cn.lag, len(held), ended, terminated)
	}
	// Requests still open reach a LAG that re-links (after a restart).
	for _, st := range c.requests {
		if st.req.LAGID == cn.lag && now.Unix() < st.req.End {
			if err := c.sendTo(out, id, &dischargeReqMsg{Request: st.req.Marshal()}); err != nil {
				return err
			}
		}
	}
	out.event(id, "lag-linked", "LAG %q (group %s) linked", cn.lag, l.cert.Group)
	return nil
}

func (c *CA) sendTo(out *Output, id ConnID, m message) error {
	cn := c.conns[id]
	if cn == nil || cn.ch == nil {
		return fmt.Errorf("%w: connection %d", ErrUnknown, id)
	}
	b, err := cn.ch.seal(encode(m))
	if err != nil {
		return err
	}
	out.send(id, b)
	return nil
}

// enrol handles a vehicle's or a LAG's enrolment request.
func (c *CA) enrol(now time.Time, id ConnID, cn *caConn, m message) (Output, error) {
	var out Output
	var reply message
	switch m := m.(type) {
	case *enrolBVMsg:
		r, added, chunks, err := c.enrolBV(now, cn.ch.binding, m, &out)
		if err != nil {
			return out, err
		}
		for _, ch := range chunks {
			if err := c.sendTo(&out, id, ch); err != nil {
				return out, err
			}
		}
		reply = r
		out.event(id, "bv-enrolled", "vehicle %q in group %s: %d pseudonym certificates, ring index %d", m.RealID, m.Group, len(r.Certs), r.RingIndex)
		// Every linked LAG learns a new ring member at once.
		if added {
			add := &groupAddMsg{Group: m.Group, Index: r.RingIndex, Key: m.RingKey}
			for _, l := range c.lags {
				if l.link != 0 {
					if err := c.sendTo(&out, l.link, add); err != nil {
						return out, err
					}
					// The LAG appends it if it held every key before it;
					// its version stays older, so the next sync sends the
					// group's header (no keys) again.
					if h := l.sent[m.Group]; h.Count == r.RingIndex && l.sent != nil {
						l.sent[m.Group] = groupHave{Group: m.Group, Version: h.Version, Count: h.Count + 1}
					}
				}
			}
		}
	case *enrolLAGMsg:
		cert, err := c.enrolLAG(now, cn.ch.binding, m, &out)
		if err != nil {
			return out, err
		}
		reply = &enrolLAGOKMsg{Cert: cert.Marshal()}
		out.event(id, "lag-enrolled", "LAG %q in group %s, certificate %d", m.LAGID, m.Group, cert.Serial)
	default:
		return out, fmt.Errorf("%w: message %#x on an enrolment connection", ErrState, m.kind())
	}
	err := c.sendTo(&out, id, reply)
	return out, err
}

func (c *CA) enrolBV(now time.Time, binding [32]byte, m *enrolBVMsg, out *Output) (resp *enrolBVOKMsg, added bool, chunks []message, err error) {
	if err := checkID("identity", m.RealID); err != nil {
		return nil, false, nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	if err := checkID("group", m.Group); err != nil {
		return nil, false, nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	if !verify(ed25519.PublicKey(m.IdentityKey[:]), domEnrol, append(binding[:], m.body()...), m.Sig) {
		return nil, false, nil, fmt.Errorf("%w: enrolment request", ErrBadSignature)
	}
	for _, k := range m.PseudoKeys {
		if err := pseudonym.CheckKey(k[:]); err != nil {
			return nil, false, nil, fmt.Errorf("%w: %w", ErrMalformed, err)
		}
	}
	idx, known := c.byReal[m.RealID]
	var spend *[32]byte
	if known {
		// A bound identity is authenticated by its identity key (the
		// signature above): a refill needs no credential.
		r := c.bvs[idx]
		if r.IdentityKey != m.IdentityKey || r.RingKey != m.RingKey || r.Group != m.Group {
			if c.usedCredentialOf(CredentialVehicle, m.RealID, m.Token) {
				return nil, false, nil, fmt.Errorf("%w: %q is enrolled with other keys, with this credential", ErrCredentialUsed, m.RealID)
			}
			return nil, false, nil, fmt.Errorf("%w: %q is enrolled with other keys or group", ErrNotPermitted, m.RealID)
		}
		if r.Revoked {
			return nil, false, nil, fmt.Errorf("%w: vehicle %q", ErrRevoked, m.RealID)
		}
	} else {
		if spend, err = c.admission(CredentialVehicle, m.RealID, m.Token, out); err != nil {
			return nil, false, nil, err
		}
		// Checked before the vehicle is added: a refused enrolment changes
		// nothing (and leaves its credential unspent).
		if len(m.PseudoKeys) > c.cfg.MaxPseudonymsPerPeriod {
			return nil, false, nil, fmt.Errorf("%w: %d pseudonyms asked, at most %d per period", ErrNotPermitted, len(m.PseudoKeys), c.cfg.MaxPseudonymsPerPeriod)
		}
		if _, err := lsag.ParsePoint(m.RingKey[:]); err != nil {
			return nil, false, nil, fmt.Errorf("%w: ring key: %w", ErrMalformed, err)
		}
		if _, dup := c.byRing[m.RingKey]; dup {
			return nil, false, nil, fmt.Errorf("%w: ring key already enrolled", ErrNotPermitted)
		}
		idx = len(c.bvs)
		g := c.groups[m.Group]
		if g == nil {
			g = newGroupKeys(nil, nil)
			c.groups[m.Group] = g
		}
		r := &bvRecord{RealID: m.RealID, Group: m.Group, IdentityKey: m.IdentityKey, RingKey: m.RingKey,
			RingIndex: uint32(len(g.keys))}
		c.addRingKey(m.Group, g, m.RingKey)
		c.groupVer[m.Group]++
		c.groupOwner[m.Group] = append(c.groupOwner[m.Group], idx)
		c.bvs = append(c.bvs, r)
		c.byReal[m.RealID] = idx
		c.byRing[m.RingKey] = idx
		c.markBV(idx)
		c.markGroup(m.Group)
		added = true
	}
	notBefore, notAfter := c.pseudonymWindow(now)
	if known {
		if had := c.issuedIn(idx, notAfter.Unix()); had+len(m.PseudoKeys) > c.cfg.MaxPseudonymsPerPeriod {
			return nil, false, nil, fmt.Errorf("%w: vehicle %q has %d of its %d pseudonyms for this period and asked for %d more: ask for at most %d, or after %s",
				ErrNotPermitted, m.RealID, had, c.cfg.MaxPseudonymsPerPeriod, len(m.PseudoKeys),
				max(0, c.cfg.MaxPseudonymsPerPeriod-had), notAfter.Add(-2*PseudonymSkew).UTC().Format(time.RFC3339))
		}
	}
	tr, err := c.pub.trace()
	if err != nil {
		return nil, false, nil, err
	}
	resp = &enrolBVOKMsg{RingIndex: c.bvs[idx].RingIndex}
	for _, k := range m.PseudoKeys {
		cert, err := pseudonym.Issue(c.keys.Sign, tr, m.RealID, m.Group, k[:], notBefore, notAfter)
		if err != nil {
			return nil, false, nil, fmt.Errorf("%w: %w", ErrMalformed, err)
		}
		c.serials[cert.Serial] = &serialInfo{bv: idx, notAfter: cert.NotAfter}
		c.countIssued(idx, cert.NotAfter)
		c.markSerial(cert.Serial)
		resp.Certs = append(resp.Certs, cert.Marshal())
	}
	c.spendCredential(now, spend)
	// The list goes as its signed head and the keys the vehicle lacks
	// (it holds the first HaveKeys), in chunks ahead of the answer.
	resp.Head = c.groupHead(m.Group).marshal()
	keys := c.groups[m.Group].keys
	from := int(m.HaveKeys)
	if from > len(keys) {
		from = 0
	}
	for lo := from; lo < len(keys); lo += syncChunkKeys {
		hi := min(len(keys), lo+syncChunkKeys)
		chunks = append(chunks, &groupKeysMsg{Group: m.Group, From: uint32(lo), Keys: keys[lo:hi]})
	}
	return resp, added, chunks, nil
}

// issuedCount is how many pseudonyms a vehicle has for one period.
type issuedCount struct {
	notAfter int64
	n        int
}

// countIssued counts a pseudonym certified to vehicle bv, valid until
// notAfter (the end of its period's window).
func (c *CA) countIssued(bv int, notAfter int64) {
	ic := c.issued[bv]
	switch {
	case notAfter > ic.notAfter:
		ic = issuedCount{notAfter: notAfter, n: 1}
	case notAfter == ic.notAfter:
		ic.n++
	default:
		return // an earlier period's
	}
	c.issued[bv] = ic
}

// issuedIn is how many pseudonyms vehicle bv has for the period whose
// window ends at notAfter.
func (c *CA) issuedIn(bv int, notAfter int64) int {
	if ic := c.issued[bv]; ic.notAfter == notAfter {
		return ic.n
	}
	return 0
}

// PseudonymSkew widens every pseudonym's validity window on both sides,
// for clocks that differ between vehicles, LAGs and the CA.
const PseudonymSkew = 5 * time.Minute

// pseudonymWindow is the validity window of the pseudonyms certified at
// now: the period of PseudonymLifetime that holds now, periods aligned on
// the Unix epoch, widened by PseudonymSkew. A window from the moment of
// enrolment would be a per-vehicle constant on every pseudonym of the
// batch, so a LAG could link a vehicle's sessions by it
// (TestUnlinkabilityCatchesLeaks); with aligned periods every pseudonym
// valid at one time shows the same window, whoever holds it and whenever it
// was issued, and the window says nothing the session's time does not.
// The price: a vehicle refills in every period, and one that enrols late
// in a period gets pseudonyms that expire soon.
func (c *CA) pseudonymWindow(now time.Time) (notBefore, notAfter time.Time) {
	p := int64(c.cfg.PseudonymLifetime / time.Second)
	start := floorDiv(now.Unix(), p) * p
	return time.Unix(start, 0).Add(-PseudonymSkew), time.Unix(start+p, 0).Add(PseudonymSkew)
}

// addRingKey appends a member's key to a group's list and extends the
// list's chain (groupHead).
func (c *CA) addRingKey(group string, g *groupKeys, k [32]byte) {
	h, ok := c.chains[group]
	if !ok {
		h = groupChainStart(group)
	}
	c.chains[group] = groupChainNext(h, k)
	g.add(k)
}

// groupHead returns the current signed head of a group's list: constant
// time in the list's length (the chain is kept up to date), plus its
// revoked members.
func (c *CA) groupHead(group string) *groupHead {
	h := &groupHead{Group: group, Version: c.groupVer[group], Chain: groupChainStart(group)}
	if g := c.groups[group]; g != nil {
		h.Count, h.Chain, h.Revoked = uint32(len(g.keys)), c.chains[group], g.revokedList()
	}
	h.Sig = sign(c.keys.Sign, domGroup, h.body())
	return h
}

// groupList returns the current signed list of a group.
func (c *CA) groupList(group string) *GroupList {
	h := c.groupHead(group)
	gl := &GroupList{Group: group, Version: h.Version, Revoked: h.Revoked, Sig: h.Sig}
	if g := c.groups[group]; g != nil {
		gl.Keys = slices.Clone(g.keys)
	}
	return gl
}

// GroupList returns the current CA-signed LSAG key list of a group.
func (c *CA) GroupList(group string) *GroupList { return c.groupList(group) }

func (c *CA) enrolLAG(now time.Time, binding [32]byte, m *enrolLAGMsg, out *Output) (*LAGCert, error) {
	if err := checkID("LAG id", m.LAGID); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	if err := checkID("group", m.Group); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	if !verify(ed25519.PublicKey(m.SignKey[:]), domEnrol, append(binding[:], m.body()...), m.Sig) {
		return nil, fmt.Errorf("%w: enrolment request", ErrBadSignature)
	}
	// A certified LAG renews with its own keys (certifyLAG refuses other
	// keys); a new one needs a LAG credential.
	var spend *[32]byte
	if c.lags[m.LAGID] == nil {
		var err error
		if spend, err = c.admission(CredentialLAG, m.LAGID, m.Token, out); err != nil {
			return nil, err
		}
	}
	cert, err := c.certifyLAG(now, m.LAGID, m.Group, m.NoiseKey, m.SignKey)
	if err == nil {
		c.spendCredential(now, spend)
	}
	return cert, err
}

// IssueLAGCert certifies a LAG directly, for tools and tests that hold the
// CA in process; LAGs over the network enrol with the token instead.
func (c *CA) IssueLAGCert(now time.Time, lagID, group string, noiseKey, signKey [32]byte) (*LAGCert, error) {
	if err := checkID("LAG id", lagID); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	if err := checkID("group", group); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	return c.certifyLAG(now, lagID, group, noiseKey, signKey)
}

// certifyLAG issues (or renews) a LAG's certificate. A LAG identifier keeps
// its keys and group for life; a static key belongs to one LAG.
func (c *CA) certifyLAG(now time.Time, lagID, group string, noiseKey, signKey [32]byte) (*LAGCert, error) {
	old := c.lags[lagID]
	if old != nil {
		if old.revoked {
			return nil, fmt.Errorf("%w: LAG %q", ErrRevoked, lagID)
		}
		if old.cert.NoiseKey != noiseKey || old.cert.SignKey != signKey || old.cert.Group != group {
			return nil, fmt.Errorf("%w: LAG %q is enrolled with other keys", ErrNotPermitted, lagID)
		}
	}
	if other, ok := c.byNoise[noiseKey]; ok && other != lagID {
		return nil, fmt.Errorf("%w: static key of LAG %q", ErrNotPermitted, other)
	}
	c.lagSerial++
	cert := LAGCert{Serial: c.lagSerial, LAGID: lagID, Group: group, NoiseKey: noiseKey, SignKey: signKey,
		NotBefore: now.Add(-time.Minute).Unix(), NotAfter: now.Add(c.cfg.LAGLifetime).Unix()}
	cert.Sig = sign(c.keys.Sign, domLAGCert, cert.body())
	rec := &lagRecord{cert: cert}
	if old != nil {
		rec.link, rec.sent, rec.crlSent, rec.crlSentSet = old.link, old.sent, old.crlSent, old.crlSentSet
	}
	c.lags[lagID] = rec
	c.byNoise[noiseKey] = lagID
	c.markLAG(lagID)
	c.dirty.meta = true
	return &cert, nil
}

// scopeSecret derives the linking base of (lagID, epoch).
func (c *CA) scopeSecret(lagID string, epoch int64) (*edwards25519.Scalar, *edwards25519.Point) {
	return lsag.DeriveBase(c.keys.LinkSecret[:], scopeName(lagID, epoch))
}

// ScopeBase returns the signed linking base of a LAG for an epoch.
func (c *CA) ScopeBase(lagID string, epoch int64) ScopeBase {
	_, b := c.scopeSecret(lagID, epoch)
	s := ScopeBase{LAGID: lagID, Epoch: epoch, Base: [32]byte(b.Bytes())}
	s.Sig = sign(c.keys.Sign, domScope, s.body())
	return s
}

// scopesAhead is how many epochs of linking bases a sync carries.
const scopesAhead = 24

// listedUntil is how long a pseudonym matters after it was certified: it
// can be used until it expires, and a resumption ticket from a session
// with it lives at most PermitLifetime longer (a ticket chain ends with the
// permit of its origin session). A revoked vehicle's serials stay on the
// revocation list until then, so that every LAG can void its tickets by
// itself (LAG.originRevoked).
func (c *CA) listedUntil(info *serialInfo) int64 {
	return info.notAfter + int64(c.cfg.PermitLifetime/time.Second)
}

// sendSync brings a LAG's link up to date: the keys of each group list
// the LAG lacks, in chunks of at most syncChunkKeys, then the sync, which
// lists only the groups that changed since what the LAG holds. So a sync
// after one enrolment or revocation costs what changed, not the size of
// the lists, and a LAG that starts empty at 10^6 vehicles receives 32 MB
// of keys in 2 MiB messages, each under the link's frame limit.
func (c *CA) sendSync(out *Output, id ConnID, now time.Time, lagID string) error {
	m := c.syncFor(now, lagID)
	l := c.lags[lagID]
	if l.sent == nil {
		l.sent = map[string]groupHave{}
	}
	names := make([]string, 0, len(c.groups))
	for g := range c.groups {
		names = append(names, g)
	}
	sort.Strings(names)
	for _, g := range names {
		keys, ver := c.groups[g].keys, c.groupVer[g]
		have := l.sent[g]
		if have.Version == ver && int(have.Count) == len(keys) {
			continue
		}
		from := int(have.Count)
		if from > len(keys) { // not this CA's list: send it whole
			from = 0
		}
		for lo := from; lo < len(keys); lo += syncChunkKeys {
			hi := min(len(keys), lo+syncChunkKeys)
			if err := c.sendTo(out, id, &groupKeysMsg{Group: g, From: uint32(lo), Keys: keys[lo:hi]}); err != nil {
				return err
			}
		}
		m.Groups = append(m.Groups, groupSync{Group: g, Version: ver, Count: uint32(len(keys)), Revoked: c.groups[g].revokedList()})
		l.sent[g] = groupHave{Group: g, Version: ver, Count: uint32(len(keys))}
	}
	// The revocation list travels when its version changed since what the
	// LAG holds, in chunks (a revoked vehicle lists up to
	// MaxPseudonymsPerPeriod serials: tens of revocations would pass a
	// frame).
	if l.crlSentSet && l.crlSent == c.crlVersion {
		m.CRLSame = true
	} else {
		serials := c.revokedSerials(now)
		for lo := 0; lo < len(serials); lo += crlChunkSerials {
			hi := min(len(serials), lo+crlChunkSerials)
			if err := c.sendTo(out, id, &crlChunkMsg{Serials: serials[lo:hi]}); err != nil {
				return err
			}
		}
		m.CRLCount = uint32(len(serials))
		l.crlSent, l.crlSentSet = c.crlVersion, true
	}
	return c.sendTo(out, id, m)
}

// revokedSerials lists the serials of revoked vehicles that are still
// listed (CA.listedUntil), in order.
func (c *CA) revokedSerials(now time.Time) [][16]byte {
	var out [][16]byte
	t := now.Unix()
	for s, info := range c.serials {
		if c.bvs[info.bv].Revoked && c.listedUntil(info) > t {
			out = append(out, s)
		}
	}
	sort.Slice(out, func(i, j int) bool { return string(out[i][:]) < string(out[j][:]) })
	return out
}

// syncFor is a LAG's sync without its groups (sendSync adds them).
func (c *CA) syncFor(now time.Time, lagID string) *syncMsg {
	m := &syncMsg{Instance: c.instance, CRLVersion: c.crlVersion, RevokedAt: c.revokedAt}
	for _, l := range c.lags {
		if l.revoked {
			m.RevokedLAGs = append(m.RevokedLAGs, l.cert.Serial)
		}
	}
	slices.Sort(m.RevokedLAGs)
	e := Epoch(now)
	for k := e - 1; k <= e+scopesAhead; k++ {
		m.Scopes = append(m.Scopes, c.ScopeBase(lagID, k))
	}
	return m
}

// fromLAG handles a message on a LAG's link.
func (c *CA) fromLAG(now time.Time, id ConnID, cn *caConn, m message) (Output, error) {
	var out Output
	l := c.lags[cn.lag]
	if l == nil || l.revoked {
		return out, fmt.Errorf("%w: LAG %q", ErrRevoked, cn.lag)
	}
	if !cn.confirmed {
		req, ok := m.(*syncReqMsg)
		if !ok {
			return out, fmt.Errorf("%w: the LAG's first message must ask for a sync", ErrState)
		}
		return out, c.confirmLink(now, id, cn, req.Held, req.Have, req.CRLVersion, req.HasHave, &out)
	}
	switch m := m.(type) {
	case *syncReqMsg:
		if m.HasHave { // the LAG says what it holds: start from that
			l.sent = make(map[string]groupHave, len(m.Have))
			for _, h := range m.Have {
				l.sent[h.Group] = h
			}
			l.crlSent, l.crlSentSet = m.CRLVersion, true
		}
		return out, c.sendSync(&out, id, now, cn.lag)
	case *verifyMsg:
		vs := c.verify(now, cn.lag, m.Entries, &out)
		return out, c.sendTo(&out, id, &verdictsMsg{Verdicts: vs})
	case *sessionEndMsg:
		c.endSession(m.Binding, cn.lag, &out, id)
		return out, nil
	case *resumedNoteMsg:
		return out, c.resumed(now, id, cn.lag, m, &out)
	case *answerFwdMsg:
		return out, c.answer(now, id, cn.lag, m, &out)
	case *statusFwdMsg:
		return out, c.status(now, id, cn.lag, m, &out)
	}
	return out, fmt.Errorf("%w: message %#x from a LAG", ErrState, m.kind())
}

// verify checks a batch of sessions a LAG forwarded and returns a verdict
// for each: a permit, or a reject code.
func (c *CA) verify(now time.Time, lagID string, entries []verifyEntry, out *Output) []verdict {
	env := &verifierEnv{
		ca: c.pub, groups: c.groups, lagID: lagID, now: now, maxEpoch: 1,
		base: func(lag string, epoch int64) (*edwards25519.Point, error) {
			_, b := c.scopeSecret(lag, epoch)
			return b, nil
		},
		revoked: func(s [16]byte) bool { info := c.serials[s]; return info != nil && c.bvs[info.bv].Revoked },
	}
	verdicts := make([]verdict, len(entries))
	checks := make([]*check, 0, len(entries))
	idx := make([]int, 0, len(entries))
	for i, e := range entries {
		verdicts[i].Binding = e.Binding
		if _, seen := c.sessions[e.Binding]; seen {
			verdicts[i].Code = codeOf(ErrReplay)
			out.fail(0, "replay", fmt.Errorf("%w: session %x from LAG %q", ErrReplay, e.Binding[:4], lagID))
			continue
		}
		ch, err := env.prepare(e.Binding, e.Challenge, e.Scheme, e.Role, e.Epoch, e.Cred, e.Sig)
		if err != nil {
			verdicts[i].Code = codeOf(err)
			out.fail(0, "verify", err)
			continue
		}
		checks = append(checks, ch)
		idx = append(idx, i)
	}
	errs := verifyChecks(c.pub, checks)
	for k, ch := range checks {
		i := idx[k]
		e := entries[i]
		err := errs[k]
		var bv int
		if err == nil {
			bv, err = c.admit(now, lagID, e, ch, out)
		}
		if err != nil {
			verdicts[i].Code = codeOf(err)
			out.fail(0, "verify", err)
			continue
		}
		r := c.bvs[bv]
		l := c.lags[lagID]
		p := &Permit{Binding: e.Binding, LAGID: lagID, Scheme: e.Scheme, Role: e.Role, Group: r.Group,
			Home: r.Group == l.cert.Group, IssuedAt: now.Unix(), NotAfter: now.Add(c.cfg.PermitLifetime).Unix()}
		p.Service = ServiceBasic
		if p.Home {
			p.Service = ServiceFull
		}
		p.Sig = sign(c.keys.Sign, domPermit, p.body())
		c.sessions[e.Binding].notAfter = p.NotAfter
		verdicts[i].Permit = p.Marshal()
		out.event(0, "permit", "session %x at LAG %q: vehicle %q (%s), %s, role %s, %s network",
			e.Binding[:4], lagID, r.RealID, ch.cred.scheme, r.Group, e.Role, map[bool]string{true: "home", false: "visiting"}[p.Home])
	}
	return verdicts
}

// admit resolves a verified credential to its vehicle and applies the
// CA-wide rules: not revoked, a pseudonym used once, one active session per
// vehicle (a second one is a clone).
func (c *CA) admit(now time.Time, lagID string, e verifyEntry, ch *check, out *Output) (int, error) {
	bv := -1
	var info *serialInfo
	switch ch.cred.scheme {
	case SchemePseudonym:
		info = c.serials[ch.cred.cert.Serial]
		if info == nil {
			// A valid certificate the CA has no record of (state lost):
			// open its tracing tag.
			real, err := pseudonym.OpenTraceTag(c.trace, ch.cred.cert)
			if err != nil {
				return 0, fmt.Errorf("%w: %w", ErrNoCredential, err)
			}
			i, ok := c.byReal[real]
			if !ok {
				return 0, fmt.Errorf("%w: traced to unknown %q", ErrUnknown, real)
			}
			info = &serialInfo{bv: i, notAfter: ch.cred.cert.NotAfter}
			c.serials[ch.cred.cert.Serial] = info
		}
		bv = info.bv
	case SchemeLSAG:
		t, _ := c.scopeSecret(lagID, ch.cred.epoch)
		k := lsag.Trace(ch.cred.ref, ch.cred.ring, t)
		if k < 0 {
			return 0, fmt.Errorf("%w: link tag traces to no ring member", ErrNoCredential)
		}
		owner := c.groupOwner[ch.cred.group]
		m := ch.cred.rr.Members[k]
		if int(m) >= len(owner) {
			return 0, fmt.Errorf("%w: ring member %d", ErrUnknown, m)
		}
		bv = owner[m]
	}
	r := c.bvs[bv]
	if r.Revoked {
		return 0, fmt.Errorf("%w: vehicle behind session %x", ErrRevoked, e.Binding[:4])
	}
	if r.Group != ch.cred.group {
		return 0, fmt.Errorf("%w: group attribute", ErrNoCredential)
	}
	if info != nil && info.used {
		c.incident(now, r, lagID, ch.cred.scheme, out)
		return 0, fmt.Errorf("%w: pseudonym %x used before", ErrCloned, ch.cred.cert.Serial[:4])
	}
	if len(r.active) > 0 {
		c.incident(now, r, lagID, ch.cred.scheme, out)
		return 0, fmt.Errorf("%w: vehicle already active", ErrCloned)
	}
	if info != nil {
		info.used = true
		c.markSerial(ch.cred.cert.Serial)
	}
	c.activate(&caSession{binding: e.Binding, lag: lagID, bv: bv, role: e.Role, cred: ch.cred}, r)
	return bv, nil
}

func (c *CA) activate(s *caSession, r *bvRecord) {
	if r.active == nil {
		r.active = map[[32]byte]string{}
	}
	r.active[s.binding] = s.lag
	c.sessions[s.binding] = s
}

func (c *CA) incident(now time.Time, r *bvRecord, lagID string, s Scheme, out *Output) {
	var lags []string
	for _, l := range r.active {
		lags = append(lags, l)
	}
	sort.Strings(lags)
	inc := Incident{Time: now, RealID: r.RealID, LAGs: append(lags, lagID), Scheme: s}
	c.incidents = append(c.incidents, inc)
	out.event(0, "clone", "vehicle %q active at %v and now at %q", r.RealID, lags, lagID)
}

// Incidents returns the clones detected so far.
func (c *CA) Incidents() []Incident { return slices.Clone(c.incidents) }

func (c *CA) endSession(binding [32]byte, lagID string, out *Output, id ConnID) {
	s := c.sessions[binding]
	if s == nil || s.lag != lagID {
		return
	}
	delete(c.bvs[s.bv].active, binding)
	out.event(id, "session-end", "session %x of %q at %q ended", binding[:4], c.bvs[s.bv].RealID, lagID)
}

func (c *CA) resumed(now time.Time, id ConnID, lagID string, m *resumedNoteMsg, out *Output) error {
	origin := c.sessions[m.Origin]
	if origin == nil || origin.lag != lagID {
		return c.sendTo(out, id, &terminateMsg{Binding: m.Binding, Code: codeOf(ErrUnknown)})
	}
	if _, dup := c.sessions[m.Binding]; dup {
		return c.sendTo(out, id, &terminateMsg{Binding: m.Binding, Code: codeOf(ErrReplay)})
	}
	r := c.bvs[origin.bv]
	var code uint8
	switch {
	case r.Revoked:
		code = codeOf(ErrRevoked)
	case len(r.active) > 0:
		c.incident(now, r, lagID, origin.cred.scheme, out)
		code = codeOf(ErrCloned)
	}
	if code != 0 {
		return c.sendTo(out, id, &terminateMsg{Binding: m.Binding, Code: code})
	}
	c.activate(&caSession{binding: m.Binding, lag: lagID, bv: origin.bv, role: m.Role, cred: origin.cred, resumed: true, notAfter: origin.notAfter}, r)
	out.event(id, "resumed", "session %x: vehicle %q resumed at home LAG %q", m.Binding[:4], r.RealID, lagID)
	return nil
}

// RequestDischarge asks a LAG's storage and supply vehicles to discharge.
func (c *CA) RequestDischarge(now time.Time, lagID string, mode Mode, powerW uint32, window time.Duration) (Output, *DischargeRequest, error) {
	var out Output
	l := c.lags[lagID]
	if l == nil || l.link == 0 {
		return out, nil, fmt.Errorf("%w: LAG %q is not linked", ErrUnknown, lagID)
	}
	d := &DischargeRequest{LAGID: lagID, Mode: mode, PowerW: powerW, Start: now.Unix(), End: now.Add(window).Unix()}
	if _, err := rand.Read(d.ID[:]); err != nil {
		return out, nil, err
	}
	d.Sig = sign(c.keys.Sign, domDischarge, d.body())
	for id, st := range c.requests { // forget requests closed a day ago
		if st.req.End < now.Add(-24*time.Hour).Unix() {
			delete(c.requests, id)
		}
	}
	c.requests[d.ID] = &dischargeState{req: d, answers: map[[32]byte]Decision{}, fresh: map[[32]byte]bool{}}
	if err := c.sendTo(&out, l.link, &dischargeReqMsg{Request: d.Marshal()}); err != nil {
		return out, nil, err
	}
	out.event(l.link, "discharge-request", "request %x to LAG %q: %s, %d W each", d.ID[:4], lagID, mode, powerW)
	return out, d, nil
}

func (c *CA) sessionOf(lagID string, binding [32]byte) (*caSession, error) {
	s := c.sessions[binding]
	if s == nil || s.lag != lagID {
		return nil, fmt.Errorf("%w: session %x", ErrUnknown, binding[:4])
	}
	if _, active := c.bvs[s.bv].active[binding]; !active {
		return nil, fmt.Errorf("%w: session %x has ended", ErrState, binding[:4])
	}
	if c.bvs[s.bv].Revoked {
		return nil, fmt.Errorf("%w: session %x", ErrRevoked, binding[:4])
	}
	return s, nil
}

// answer opens a vehicle's discharge answer, records it, and returns the
// sealed acknowledgement (and an aggregate for the LAG once enough
// vehicles answered).
func (c *CA) answer(now time.Time, id ConnID, lagID string, m *answerFwdMsg, out *Output) error {
	s, err := c.sessionOf(lagID, m.Binding)
	if err != nil {
		out.fail(id, "answer", err)
		return nil
	}
	st := c.requests[m.Answer.ReqID]
	if st == nil || st.req.LAGID != lagID || now.Unix() >= st.req.End {
		out.fail(id, "answer", fmt.Errorf("%w: discharge request %x", ErrUnknown, m.Answer.ReqID[:4]))
		return nil
	}
	if err := s.cred.verifyAnon(anonStatement(m.Binding, msgAnswer, m.Answer.ReqID[:], m.Answer.Sealed), m.Answer.Sig); err != nil {
		out.fail(id, "answer", err)
		return nil
	}
	pt, err := openAtCA(c.trace, "answer", m.Binding, m.Answer.Sealed, answerPlainSize)
	if err != nil {
		out.fail(id, "answer", err)
		return nil
	}
	a, err := parseAnswerPlain(pt)
	if err != nil || a.ReqID != m.Answer.ReqID {
		out.fail(id, "answer", fmt.Errorf("%w: sealed answer names another request", ErrMalformed))
		return nil
	}
	r := c.bvs[s.bv]
	if !s.role.discharges() {
		a.Decision = Decline
	}
	prev, had := st.answers[m.Binding]
	st.answers[m.Binding] = a.Decision
	if !had || prev != a.Decision {
		st.fresh[m.Binding] = true
	}
	if a.Decision == Agree && !(had && prev == Agree) {
		r.Discharged++
		c.markBV(s.bv)
	}
	granted := int64(0)
	if a.Decision == Agree {
		granted = int64(st.req.PowerW)
	}
	sealed, err := sealReply(a.ReplyKey, replyAAD(m.Binding, a.ReqID[:]), reply{Kind: uint8(a.Decision), A: granted, B: st.req.End})
	if err != nil {
		return err
	}
	rep := &caReply{Binding: m.Binding, ReqID: a.ReqID, Sealed: sealed}
	rep.Sig = sign(c.keys.Sign, domAck, rep.body())
	fwd := &replyFwdMsg{k: msgAckFwd, Reply: rep.marshal()}
	// The aggregate goes out only when AggregateMin answers changed since
	// the last one: two consecutive aggregates never differ by one answer.
	if len(st.fresh) >= c.cfg.AggregateMin {
		st.fresh = map[[32]byte]bool{}
		fwd.HasAgg = true
		fwd.Agg = Aggregate{ReqID: a.ReqID, Count: uint32(len(st.answers))}
		for _, d := range st.answers {
			if d == Agree {
				fwd.Agg.TotalW += int64(st.req.PowerW)
			}
		}
	}
	out.event(id, "discharge-answer", "vehicle %q answered %s to request %x (SOC %.1f%%)", r.RealID, a.Decision, a.ReqID[:4], float64(a.Battery.SOCPermille)/10)
	return c.sendTo(out, id, fwd)
}

func replyAAD(binding [32]byte, id []byte) []byte { return append(binding[:], id...) }

// openRequest returns a LAG's discharge request that is still open.
func (c *CA) openRequest(now time.Time, lagID string) *dischargeState {
	for _, st := range c.requests {
		if st.req.LAGID == lagID && now.Unix() < st.req.End {
			return st
		}
	}
	return nil
}

// status opens a vehicle's pseudo-status, bills it, and returns the sealed
// real status to the vehicle (and an aggregate to the LAG once enough
// vehicles reported there).
func (c *CA) status(now time.Time, id ConnID, lagID string, m *statusFwdMsg, out *Output) error {
	s, err := c.sessionOf(lagID, m.Binding)
	if err != nil {
		out.fail(id, "status", err)
		return nil
	}
	if err := s.cred.verifyAnon(anonStatement(m.Binding, msgStatus, seqBytes(m.Status.Seq), m.Status.Sealed), m.Status.Sig); err != nil {
		out.fail(id, "status", err)
		return nil
	}
	pt, err := openAtCA(c.trace, "status", m.Binding, m.Status.Sealed, statusPlainSize)
	if err != nil {
		out.fail(id, "status", err)
		return nil
	}
	sp, err := parseStatusPlain(pt)
	if err != nil || sp.Seq != m.Status.Seq || sp.Seq != s.statuses+1 {
		out.fail(id, "status", fmt.Errorf("%w: status report out of sequence", ErrReplay))
		return nil
	}
	s.statuses = sp.Seq
	r := c.bvs[s.bv]
	r.EnergyWh += int64(sp.Battery.EnergyWh)
	c.markBV(s.bv)
	sealed, err := sealReply(sp.ReplyKey, replyAAD(m.Binding, seqBytes(sp.Seq)), reply{Kind: uint8(sp.Kind), A: int64(sp.Battery.SOCPermille), B: r.EnergyWh})
	if err != nil {
		return err
	}
	rep := &caReply{Binding: m.Binding, Seq: sp.Seq, Sealed: sealed}
	rep.Sig = sign(c.keys.Sign, domStatus, rep.body())
	agg := c.statusAgg[lagID]
	if agg == nil {
		agg = &aggState{batch: map[[32]byte]bool{}}
		c.statusAgg[lagID] = agg
	}
	agg.batch[m.Binding] = true
	agg.totalWh += int64(sp.Battery.EnergyWh)
	fwd := &replyFwdMsg{k: msgStatusReplyFwd, Reply: rep.marshal()}
	if len(agg.batch) >= c.cfg.AggregateMin {
		fwd.HasAgg = true
		fwd.Agg = Aggregate{Count: uint32(len(agg.batch)), TotalWh: agg.totalWh}
		c.statusAgg[lagID] = &aggState{batch: map[[32]byte]bool{}}
	}
	out.event(id, "status", "vehicle %q at %q: %s, SOC %.1f%%, %+d Wh (billed total %d Wh)", r.RealID, lagID, sp.Kind,
		float64(sp.Battery.SOCPermille)/10, sp.Battery.EnergyWh, r.EnergyWh)
	if err := c.sendTo(out, id, fwd); err != nil {
		return err
	}
	// One open request per LAG: vehicles that become full later answer it
	// (again) themselves.
	if sp.Kind == StatusFullyCharged && c.cfg.AutoDischarge && s.role.discharges() && c.openRequest(now, lagID) == nil {
		o, _, err := c.RequestDischarge(now, lagID, c.cfg.DischargeMode, c.cfg.DischargePowerW, c.cfg.DischargeWindow)
		if err != nil {
			return err
		}
		out.merge(o)
	}
	return nil
}

func seqBytes(seq uint32) []byte { return wire.NewBuilder(nil).U32(seq).Out() }

// RevokeBV revokes a vehicle: its pseudonyms go on the revocation list, its
// ring key is marked revoked in its group, its active sessions are
// terminated, and every linked LAG gets the new list at once.
func (c *CA) RevokeBV(now time.Time, realID string) (Output, error) {
	var out Output
	i, ok := c.byReal[realID]
	if !ok {
		return out, fmt.Errorf("%w: vehicle %q", ErrUnknown, realID)
	}
	r := c.bvs[i]
	if r.Revoked {
		return out, nil
	}
	r.Revoked = true
	c.groups[r.Group].revoked[r.RingIndex] = true
	c.groupVer[r.Group]++
	c.crlVersion++
	c.revokedAt = now.Unix()
	c.markBV(i)
	c.markGroup(r.Group)
	c.dirty.meta = true
	for b, lag := range r.active {
		if l := c.lags[lag]; l != nil && l.link != 0 {
			if err := c.sendTo(&out, l.link, &terminateMsg{Binding: b, Code: codeOf(ErrRevoked)}); err != nil {
				return out, err
			}
		}
		delete(r.active, b)
	}
	out.event(0, "revoked", "vehicle %q revoked (revocation list v%d)", realID, c.crlVersion)
	return out, c.pushSync(now, &out)
}

// RevokeLAG revokes a LAG: its link is closed and the CA refuses its
// verifications, so no vehicle gets a permit through it.
func (c *CA) RevokeLAG(now time.Time, lagID string) (Output, error) {
	var out Output
	l := c.lags[lagID]
	if l == nil {
		return out, fmt.Errorf("%w: LAG %q", ErrUnknown, lagID)
	}
	l.revoked = true
	c.crlVersion++
	c.revokedAt = now.Unix()
	c.markLAG(lagID)
	c.dirty.meta = true
	if l.link != 0 {
		out.Close = append(out.Close, l.link)
		l.link = 0
	}
	out.event(0, "revoked", "LAG %q revoked", lagID)
	return out, c.pushSync(now, &out)
}

func (c *CA) pushSync(now time.Time, out *Output) error {
	for id, l := range c.lags {
		if l.link != 0 && !l.revoked {
			if err := c.sendSync(out, l.link, now, id); err != nil {
				return err
			}
		}
	}
	return nil
}

// Trace returns the real identity behind a session: for a pseudonym by
// opening the certificate's tracing tag, for LSAG by testing the link tag
// against the ring with the scope's secret. Only the CA can do either.
func (c *CA) Trace(binding [32]byte) (string, error) {
	s := c.sessions[binding]
	if s == nil {
		return "", fmt.Errorf("%w: session %x", ErrUnknown, binding[:4])
	}
	switch s.cred.scheme {
	case SchemePseudonym:
		return pseudonym.OpenTraceTag(c.trace, s.cred.cert)
	case SchemeLSAG:
		t, b := c.scopeSecret(s.lag, s.cred.epoch)
		if b.Equal(s.cred.base) != 1 {
			return "", fmt.Errorf("%w: linking base", ErrUnknown)
		}
		k := lsag.Trace(s.cred.ref, s.cred.ring, t)
		if k < 0 {
			return "", fmt.Errorf("%w: link tag", ErrUnknown)
		}
		return c.bvs[c.groupOwner[s.cred.group][s.cred.rr.Members[k]]].RealID, nil
	}
	return "", fmt.Errorf("%w: scheme", ErrUnknown)
}

// TraceCert opens a pseudonym certificate's tracing tag.
func (c *CA) TraceCert(cert *pseudonym.Cert) (string, error) {
	return pseudonym.OpenTraceTag(c.trace, cert)
}

// CASessionView is what the CA knows of one session.
type CASessionView struct {
	Binding string
	LAG     string
	RealID  string
	Scheme  Scheme
	Role    Role
	Active  bool
	Resumed bool
}

// Sessions lists the sessions the CA permitted, in binding order.
func (c *CA) Sessions() []CASessionView {
	var out []CASessionView
	for b, s := range c.sessions {
		r := c.bvs[s.bv]
		_, active := r.active[b]
		out = append(out, CASessionView{Binding: hex.EncodeToString(b[:]), LAG: s.lag, RealID: r.RealID,
			Scheme: s.cred.scheme, Role: s.role, Active: active, Resumed: s.resumed})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Binding < out[j].Binding })
	return out
}

// Billing returns each vehicle's energy reported through status reports
// (Wh) and the number of discharge requests it agreed to.
func (c *CA) Billing() map[string][2]int64 {
	out := map[string][2]int64{}
	for _, r := range c.bvs {
		out[r.RealID] = [2]int64{r.EnergyWh, r.Discharged}
	}
	return out
}

// caSnapshot is the CA's durable state, as JSON.
type caSnapshot struct {
	Version    int               `json:"version"`
	BVs        []*bvRecord       `json:"bvs"`
	Serials    []snapSerial      `json:"serials"`
	LAGs       []snapLAG         `json:"lags"`
	GroupVer   map[string]uint64 `json:"group_versions"`
	LAGSerial  uint64            `json:"lag_serial"`
	CRLVersion uint64            `json:"crl_version"`
	RevokedAt  int64             `json:"revoked_at"`
}

type snapSerial struct {
	Serial   [16]byte `json:"serial"`
	BV       int      `json:"bv"`
	NotAfter int64    `json:"not_after"`
	Used     bool     `json:"used"`
}

type snapLAG struct {
	Cert    []byte `json:"cert"`
	Revoked bool   `json:"revoked"`
}

// Snapshot encodes the CA's durable state: registrations, certified
// serials (with their use), LAG certificates, revocations. Active sessions
// and open discharge requests are not durable: after a restart LAGs
// re-link and vehicles authenticate again.
func (c *CA) Snapshot(now time.Time) ([]byte, error) {
	s := caSnapshot{Version: 1, BVs: c.bvs, GroupVer: c.groupVer, LAGSerial: c.lagSerial, CRLVersion: c.crlVersion, RevokedAt: c.revokedAt}
	t := now.Unix()
	for k, v := range c.serials {
		if c.listedUntil(v) > t { // expired serials can never be used again, nor their tickets once listedUntil passed
			s.Serials = append(s.Serials, snapSerial{k, v.bv, v.notAfter, v.used})
		}
	}
	sort.Slice(s.Serials, func(i, j int) bool { return string(s.Serials[i].Serial[:]) < string(s.Serials[j].Serial[:]) })
	names := make([]string, 0, len(c.lags))
	for id := range c.lags {
		names = append(names, id)
	}
	sort.Strings(names)
	for _, id := range names {
		s.LAGs = append(s.LAGs, snapLAG{Cert: c.lags[id].cert.Marshal(), Revoked: c.lags[id].revoked})
	}
	return json.Marshal(s)
}

// RestoreCA rebuilds a CA from its keys and a Snapshot.
func RestoreCA(keys *CAKeys, cfg CAConfig, snapshot []byte) (*CA, error) {
	c, err := NewCA(keys, cfg)
	if err != nil {
		return nil, err
	}
	var s caSnapshot
	if err := json.Unmarshal(snapshot, &s); err != nil {
		return nil, fmt.Errorf("%w: CA state: %w", ErrMalformed, err)
	}
	if s.Version != 1 {
		return nil, fmt.Errorf("%w: CA state version %d", ErrMalformed, s.Version)
	}
	for i, r := range s.BVs {
		if r == nil {
			return nil, fmt.Errorf("%w: CA state: empty vehicle %d", ErrMalformed, i)
		}
		g := c.groups[r.Group]
		if g == nil {
			g = newGroupKeys(nil, nil)
			c.groups[r.Group] = g
		}
		if int(r.RingIndex) != len(g.keys) {
			return nil, fmt.Errorf("%w: CA state: ring index of %q", ErrMalformed, r.RealID)
		}
		c.addRingKey(r.Group, g, r.RingKey)
		if r.Revoked {
			g.revoked[r.RingIndex] = true
		}
		c.groupOwner[r.Group] = append(c.groupOwner[r.Group], i)
		c.bvs = append(c.bvs, r)
		c.byReal[r.RealID] = i
		c.byRing[r.RingKey] = i
	}
	for _, v := range s.Serials {
		if v.BV < 0 || v.BV >= len(c.bvs) {
			return nil, fmt.Errorf("%w: CA state: serial owner %d", ErrMalformed, v.BV)
		}
		c.serials[v.Serial] = &serialInfo{bv: v.BV, notAfter: v.NotAfter, used: v.Used}
		c.countIssued(v.BV, v.NotAfter)
	}
	for _, l := range s.LAGs {
		cert, err := ParseLAGCert(l.Cert)
		if err != nil {
			return nil, err
		}
		c.lags[cert.LAGID] = &lagRecord{cert: *cert, revoked: l.Revoked}
		c.byNoise[cert.NoiseKey] = cert.LAGID
	}
	for g, v := range s.GroupVer {
		c.groupVer[g] = v
	}
	c.lagSerial, c.crlVersion, c.revokedAt = s.LAGSerial, s.CRLVersion, s.RevokedAt
	return c, nil
}
