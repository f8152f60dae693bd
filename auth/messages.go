package auth

import (
	"fmt"

	"github.com/gridveil/gridveil/auth/pseudonym"
	"github.com/gridveil/gridveil/auth/wire"
)

// Messages inside Noise channels start with one kind byte. Their encodings
// are canonical (package wire): decoding and re-encoding gives the input.
const (
	// vehicle -> LAG
	msgAuth    = 0x10
	msgResume  = 0x11
	msgGrant   = 0x12
	msgAnswer  = 0x13
	msgStatus  = 0x14
	msgBye     = 0x15
	msgInquiry = 0x16
	// LAG -> vehicle
	msgPermit       = 0x20
	msgReject       = 0x21
	msgBatch        = 0x22
	msgDischarge    = 0x23
	msgAck          = 0x24
	msgStatusReply  = 0x25
	msgResumed      = 0x26
	msgV2V          = 0x27
	msgInquiryReply = 0x28
	// LAG <-> CA
	msgSync           = 0x40
	msgGroupAdd       = 0x41
	msgSyncReq        = 0x42
	msgVerify         = 0x43
	msgVerdicts       = 0x44
	msgSessionEnd     = 0x45
	msgResumedNote    = 0x46
	msgTerminate      = 0x47
	msgDischargeReq   = 0x48
	msgAnswerFwd      = 0x49
	msgAckFwd         = 0x4a
	msgStatusFwd      = 0x4b
	msgStatusReplyFwd = 0x4c
	msgGroupKeys      = 0x4d
	msgCRLChunk       = 0x4e
	// enrolment, vehicle or LAG <-> CA
	msgEnrolBV    = 0x50
	msgEnrolBVOK  = 0x51
	msgEnrolLAG   = 0x52
	msgEnrolLAGOK = 0x53
)

// Caps on variable fields.
const (
	maxCred      = max(pseudonym.MaxCertSize+8, 4+MaxID+4+4*MaxRingSize) // a certificate, or a ring reference (group, members) of the largest ring
	maxTicket    = 256
	maxPath      = 40
	maxPseudo    = 1000 // pseudonym keys per enrolment request
	maxBatch     = 1 << 16
	maxSigLen    = 32 + 32 + 32*MaxRingSize // an LSAG signature over the largest ring
	maxRequest   = 256
	maxReplyEnc  = 512
	maxPermitLen = 512
)

type message interface {
	kind() uint8
	put(w *wire.Builder)
	get(r *wire.Reader)
}

func encode(m message) []byte {
	w := wire.NewBuilder([]byte{m.kind()})
	m.put(w)
	return w.Out()
}

// decode parses b (kind byte first) into m.
func decode(b []byte, m message) error {
	if len(b) == 0 || b[0] != m.kind() {
		return fmt.Errorf("%w: expected message %#x", ErrState, m.kind())
	}
	r := wire.NewReader(b[1:])
	m.get(r)
	if err := r.Finish(); err != nil {
		return fmt.Errorf("%w: message %#x: %w", ErrMalformed, m.kind(), err)
	}
	return nil
}

// newMessage returns an empty message of a kind, or nil.
func newMessage(kind uint8) message {
	switch kind {
	case msgAuth:
		return new(authReq)
	case msgResume:
		return new(resumeReq)
	case msgGrant:
		return new(grantMsg)
	case msgAnswer:
		return new(answerMsg)
	case msgStatus:
		return new(statusMsg)
	case msgBye:
		return new(byeMsg)
	case msgInquiry:
		return new(inquiryMsg)
	case msgPermit:
		return new(permitMsg)
	case msgReject:
		return new(rejectMsg)
	case msgBatch:
		return new(batchMsg)
	case msgDischarge:
		return new(dischargeMsg)
	case msgAck:
		return &replyMsg{k: msgAck}
	case msgStatusReply:
		return &replyMsg{k: msgStatusReply}
	case msgResumed:
		return new(resumedMsg)
	case msgV2V:
		return new(v2vMsg)
	case msgInquiryReply:
		return new(inquiryReplyMsg)
	case msgSync:
		return new(syncMsg)
	case msgGroupAdd:
		return new(groupAddMsg)
	case msgGroupKeys:
		return new(groupKeysMsg)
	case msgCRLChunk:
		return new(crlChunkMsg)
	case msgSyncReq:
		return new(syncReqMsg)
	case msgVerify:
		return new(verifyMsg)
	case msgVerdicts:
		return new(verdictsMsg)
	case msgSessionEnd:
		return new(sessionEndMsg)
	case msgResumedNote:
		return new(resumedNoteMsg)
	case msgTerminate:
		return new(terminateMsg)
	case msgDischargeReq:
		return new(dischargeReqMsg)
	case msgAnswerFwd:
		return new(answerFwdMsg)
	case msgAckFwd:
		return &replyFwdMsg{k: msgAckFwd}
	case msgStatusFwd:
		return new(statusFwdMsg)
	case msgStatusReplyFwd:
		return &replyFwdMsg{k: msgStatusReplyFwd}
	case msgEnrolBV:
		return new(enrolBVMsg)
	case msgEnrolBVOK:
		return new(enrolBVOKMsg)
	case msgEnrolLAG:
		return new(enrolLAGMsg)
	case msgEnrolLAGOK:
		return new(enrolLAGOKMsg)
	case msgAdminTrace:
		return new(adminTraceMsg)
	case msgAdminRevoke:
		return new(adminRevokeMsg)
	case msgAdminResult:
		return new(adminResultMsg)
	case msgAdminIssue:
		return new(adminIssueMsg)
	case msgAdminUncred:
		return new(adminUncredMsg)
	}
	return nil
}

// parseAny decodes a message of any known kind.
func parseAny(b []byte) (message, error) {
	if len(b) == 0 {
		return nil, fmt.Errorf("%w: empty message", ErrMalformed)
	}
	m := newMessage(b[0])
	if m == nil {
		return nil, fmt.Errorf("%w: unknown message kind %#x", ErrMalformed, b[0])
	}
	return m, decode(b, m)
}

// hello is the LAG's first frame, in clear (it is the Noise prologue, so a
// change to it breaks the handshake).
type hello struct {
	Version  uint8
	Schemes  []Scheme // offered, in the LAG's order of preference
	Resume   bool     // the LAG issues and accepts resumption tickets
	Cert     LAGCert
	HasScope bool
	Scope    ScopeBase // this epoch's LSAG linking base, if LSAG is offered
}

func (h *hello) kind() uint8 { return frameHello }
func (h *hello) put(w *wire.Builder) {
	w.U8(h.Version).Count(len(h.Schemes))
	for _, s := range h.Schemes {
		w.U8(uint8(s))
	}
	w.U8(b2u(h.Resume)).Fixed(h.Cert.Marshal()).U8(b2u(h.HasScope))
	if h.HasScope {
		h.Scope.write(w)
	}
}
func (h *hello) get(r *wire.Reader) {
	h.Version = r.U8()
	h.Schemes = make([]Scheme, r.Count(8, 1))
	for i := range h.Schemes {
		h.Schemes[i] = Scheme(r.U8())
	}
	h.Resume = u2b(r)
	h.Cert = readLAGCert(r)
	h.HasScope = u2b(r)
	if h.HasScope {
		h.Scope = readScopeBase(r)
	}
}

func b2u(b bool) uint8 {
	if b {
		return 1
	}
	return 0
}

func u2b(r *wire.Reader) bool {
	v := r.U8()
	if v > 1 {
		r.Failf("flag %d", v)
	}
	return v == 1
}

// choice is the payload of the vehicle's first handshake message,
// encrypted to the LAG's static key.
type choice struct {
	Version uint8
	Scheme  Scheme
	Resume  bool
}

func (c *choice) kind() uint8 { return frameHS1 }
func (c *choice) put(w *wire.Builder) {
	w.U8(c.Version).U8(uint8(c.Scheme)).U8(b2u(c.Resume))
}
func (c *choice) get(r *wire.Reader) {
	c.Version, c.Scheme, c.Resume = r.U8(), Scheme(r.U8()), u2b(r)
}

// ringRef names an LSAG ring by indices into the CA's group list.
type ringRef struct {
	Group   string
	Members []uint32 // ascending
}

func (rr *ringRef) marshal() []byte {
	w := wire.NewBuilder(nil).String(rr.Group).Count(len(rr.Members))
	for _, m := range rr.Members {
		w.U32(m)
	}
	return w.Out()
}

func parseRingRef(b []byte) (*ringRef, error) {
	r := wire.NewReader(b)
	rr := &ringRef{Group: r.String(MaxID)}
	n := r.Count(MaxRingSize, 4)
	if n == 0 {
		r.Failf("empty ring")
	}
	rr.Members = make([]uint32, n)
	for i := range rr.Members {
		rr.Members[i] = r.U32()
		if i > 0 && rr.Members[i] <= rr.Members[i-1] {
			r.Failf("ring members not ascending")
		}
	}
	if err := r.Finish(); err != nil {
		return nil, fmt.Errorf("%w: ring reference: %w", ErrMalformed, err)
	}
	return rr, nil
}

type authReq struct {
	Scheme Scheme
	Role   Role
	Cred   []byte // pseudonym certificate, or ring reference
	OpKey  [32]byte
	Sig    []byte
}

func (m *authReq) kind() uint8 { return msgAuth }
func (m *authReq) put(w *wire.Builder) {
	w.U8(uint8(m.Scheme)).U8(uint8(m.Role)).Bytes(m.Cred).Fixed(m.OpKey[:]).Bytes(m.Sig)
}
func (m *authReq) get(r *wire.Reader) {
	m.Scheme, m.Role = Scheme(r.U8()), Role(r.U8())
	m.Cred = r.Bytes(maxCred)
	r.FixedInto(m.OpKey[:])
	m.Sig = r.Bytes(maxSigLen)
}

type resumeReq struct {
	Ticket []byte
	Binder [32]byte
	Role   Role
	OpKey  [32]byte
}

func (m *resumeReq) kind() uint8 { return msgResume }
func (m *resumeReq) put(w *wire.Builder) {
	w.Bytes(m.Ticket).Fixed(m.Binder[:]).U8(uint8(m.Role)).Fixed(m.OpKey[:])
}
func (m *resumeReq) get(r *wire.Reader) {
	m.Ticket = r.Bytes(maxTicket)
	r.FixedInto(m.Binder[:])
	m.Role = Role(r.U8())
	r.FixedInto(m.OpKey[:])
}

type grantMsg struct{ MAC [32]byte }

func (m *grantMsg) kind() uint8         { return msgGrant }
func (m *grantMsg) put(w *wire.Builder) { w.Fixed(m.MAC[:]) }
func (m *grantMsg) get(r *wire.Reader)  { r.FixedInto(m.MAC[:]) }
func (m *byeMsg) kind() uint8           { return msgBye }
func (m *byeMsg) put(*wire.Builder)     {}
func (m *byeMsg) get(*wire.Reader)      {}
func (m *inquiryMsg) kind() uint8       { return msgInquiry }
func (m *inquiryMsg) put(*wire.Builder) {}
func (m *inquiryMsg) get(*wire.Reader)  {}
func (m *syncReqMsg) kind() uint8       { return msgSyncReq }
func (m *syncReqMsg) put(w *wire.Builder) {
	w.Count(len(m.Held))
	for _, b := range m.Held {
		w.Fixed(b[:])
	}
	w.U8(b2u(m.HasHave)).U64(m.CRLVersion).Count(len(m.Have))
	for _, h := range m.Have {
		w.String(h.Group).U64(h.Version).U32(h.Count)
	}
}
func (m *syncReqMsg) get(r *wire.Reader) {
	m.Held = make([][32]byte, r.Count(maxList, 32))
	for i := range m.Held {
		r.FixedInto(m.Held[i][:])
	}
	m.HasHave = u2b(r)
	m.CRLVersion = r.U64()
	m.Have = make([]groupHave, r.Count(maxGroups, 13))
	for i := range m.Have {
		m.Have[i] = groupHave{Group: r.String(MaxID), Version: r.U64(), Count: r.U32()}
	}
}
func (m *rejectMsg) kind() uint8             { return msgReject }
func (m *rejectMsg) put(w *wire.Builder)     { w.U8(m.Code) }
func (m *rejectMsg) get(r *wire.Reader)      { m.Code = r.U8() }
func (m *sessionEndMsg) kind() uint8         { return msgSessionEnd }
func (m *sessionEndMsg) put(w *wire.Builder) { w.Fixed(m.Binding[:]) }
func (m *sessionEndMsg) get(r *wire.Reader)  { r.FixedInto(m.Binding[:]) }

type byeMsg struct{}
type inquiryMsg struct{}

// syncReqMsg asks the CA for a sync. The first one on a link also says
// which sessions the LAG still holds (admitted, or waiting for the
// vehicle's grant), so that the CA forgets the others and ends those it
// does not know or has revoked (CA.confirmLink), and (HasHave) which
// version and how many keys of each group's list it holds, so that the
// sync carries only what it lacks.
type syncReqMsg struct {
	Held       [][32]byte
	HasHave    bool
	CRLVersion uint64 // the revocation list the LAG holds (with HasHave)
	Have       []groupHave
}

// crlChunkSerials is the most serials one crlChunkMsg carries (2 MiB).
const crlChunkSerials = 1 << 17

// crlChunkMsg carries part of the revocation list's serials to a LAG,
// ahead of the sync that names the list's version and length; the list
// travels only when its version changed since what the LAG holds.
type crlChunkMsg struct{ Serials [][16]byte }

func (m *crlChunkMsg) kind() uint8 { return msgCRLChunk }
func (m *crlChunkMsg) put(w *wire.Builder) {
	w.Count(len(m.Serials))
	for _, s := range m.Serials {
		w.Fixed(s[:])
	}
}
func (m *crlChunkMsg) get(r *wire.Reader) {
	m.Serials = make([][16]byte, r.Count(crlChunkSerials, 16))
	for i := range m.Serials {
		r.FixedInto(m.Serials[i][:])
	}
}

// groupHave is how much of a group's key list a LAG holds: the list's
// version and its first Count keys. Group lists only grow (a key's index
// is its ring index for good), so the first Count keys of the CA's list
// are the LAG's.
type groupHave struct {
	Group   string
	Version uint64
	Count   uint32
}

// maxGroups bounds the groups of a sync.
const maxGroups = 1024

// syncChunkKeys is the most keys one groupKeysMsg carries (2 MiB), well
// under the link's frame limit: a group list of any size goes in chunks.
const syncChunkKeys = 1 << 16

// groupKeysMsg carries keys From.. of a group's list to a LAG, ahead of
// the sync that names the list's version and length.
type groupKeysMsg struct {
	Group string
	From  uint32
	Keys  [][32]byte
}

func (m *groupKeysMsg) kind() uint8 { return msgGroupKeys }
func (m *groupKeysMsg) put(w *wire.Builder) {
	w.String(m.Group).U32(m.From).Count(len(m.Keys))
	for _, k := range m.Keys {
		w.Fixed(k[:])
	}
}
func (m *groupKeysMsg) get(r *wire.Reader) {
	m.Group, m.From = r.String(MaxID), r.U32()
	m.Keys = make([][32]byte, r.Count(syncChunkKeys, 32))
	for i := range m.Keys {
		r.FixedInto(m.Keys[i][:])
	}
}

type rejectMsg struct{ Code uint8 }
type sessionEndMsg struct{ Binding [32]byte }

// answerMsg is a vehicle's sealed, anonymously signed discharge answer.
type answerMsg struct {
	ReqID  [16]byte
	Sealed []byte
	Sig    []byte
}

func (m *answerMsg) kind() uint8 { return msgAnswer }
func (m *answerMsg) put(w *wire.Builder) {
	w.Fixed(m.ReqID[:]).Bytes(m.Sealed).Bytes(m.Sig)
}
func (m *answerMsg) get(r *wire.Reader) {
	r.FixedInto(m.ReqID[:])
	m.Sealed = r.Bytes(sealedAnswerSize)
	m.Sig = r.Bytes(maxSigLen)
}

// statusMsg is a vehicle's sealed pseudo-status.
type statusMsg struct {
	Seq    uint32
	Sealed []byte
	Sig    []byte
}

func (m *statusMsg) kind() uint8 { return msgStatus }
func (m *statusMsg) put(w *wire.Builder) {
	w.U32(m.Seq).Bytes(m.Sealed).Bytes(m.Sig)
}
func (m *statusMsg) get(r *wire.Reader) {
	m.Seq = r.U32()
	m.Sealed = r.Bytes(sealedStatusSize)
	m.Sig = r.Bytes(maxSigLen)
}

type permitMsg struct {
	Permit       []byte
	Ticket       []byte // empty unless the LAG is the vehicle's home
	TicketSecret [32]byte
}

func (m *permitMsg) kind() uint8 { return msgPermit }
func (m *permitMsg) put(w *wire.Builder) {
	w.Bytes(m.Permit).Bytes(m.Ticket).Fixed(m.TicketSecret[:])
}
func (m *permitMsg) get(r *wire.Reader) {
	m.Permit = r.Bytes(maxPermitLen)
	m.Ticket = r.Bytes(maxTicket)
	r.FixedInto(m.TicketSecret[:])
}

// batchMsg confirms a batch of sessions with one LAG signature over the
// Merkle root of their bindings; each vehicle gets its own path.
type batchMsg struct {
	Seq   uint64
	Time  int64
	Count uint32
	Root  [32]byte
	Sig   [64]byte
	Index uint32
	Path  [][32]byte
}

func (m *batchMsg) kind() uint8 { return msgBatch }
func (m *batchMsg) signed(lagID string) []byte {
	return wire.NewBuilder(nil).String(lagID).U64(m.Seq).I64(m.Time).U32(m.Count).Fixed(m.Root[:]).Out()
}
func (m *batchMsg) put(w *wire.Builder) {
	w.U64(m.Seq).I64(m.Time).U32(m.Count).Fixed(m.Root[:]).Fixed(m.Sig[:]).U32(m.Index).Count(len(m.Path))
	for _, p := range m.Path {
		w.Fixed(p[:])
	}
}
func (m *batchMsg) get(r *wire.Reader) {
	m.Seq, m.Time, m.Count = r.U64(), r.I64(), r.U32()
	r.FixedInto(m.Root[:])
	r.FixedInto(m.Sig[:])
	m.Index = r.U32()
	m.Path = make([][32]byte, r.Count(maxPath, 32))
	for i := range m.Path {
		r.FixedInto(m.Path[i][:])
	}
}

// dischargeMsg forwards the CA's request with the LAG's operator.
type dischargeMsg struct {
	Request []byte
	MAC     [32]byte
}

func (m *dischargeMsg) kind() uint8         { return msgDischarge }
func (m *dischargeMsg) put(w *wire.Builder) { w.Bytes(m.Request).Fixed(m.MAC[:]) }
func (m *dischargeMsg) get(r *wire.Reader) {
	m.Request = r.Bytes(maxRequest)
	r.FixedInto(m.MAC[:])
}

// replyMsg forwards a CA reply (ack or status reply) with the LAG's operator.
type replyMsg struct {
	k     uint8
	Reply []byte
	MAC   [32]byte
}

func (m *replyMsg) kind() uint8         { return m.k }
func (m *replyMsg) put(w *wire.Builder) { w.Bytes(m.Reply).Fixed(m.MAC[:]) }
func (m *replyMsg) get(r *wire.Reader) {
	m.Reply = r.Bytes(maxReplyEnc)
	r.FixedInto(m.MAC[:])
}

type resumedMsg struct {
	MAC          [32]byte
	Service      Service
	Ticket       []byte
	TicketSecret [32]byte
}

func (m *resumedMsg) kind() uint8 { return msgResumed }
func (m *resumedMsg) put(w *wire.Builder) {
	w.Fixed(m.MAC[:]).U16(uint16(m.Service)).Bytes(m.Ticket).Fixed(m.TicketSecret[:])
}
func (m *resumedMsg) get(r *wire.Reader) {
	r.FixedInto(m.MAC[:])
	m.Service = Service(r.U16())
	m.Ticket = r.Bytes(maxTicket)
	r.FixedInto(m.TicketSecret[:])
}

// v2vMsg tells a load vehicle how much of its charge the station's pool of
// discharged energy (distributed mode) supplies. It names no supplier.
type v2vMsg struct {
	ReqID    [16]byte
	EnergyWh uint32
	MAC      [32]byte
}

func (m *v2vMsg) kind() uint8 { return msgV2V }
func (m *v2vMsg) put(w *wire.Builder) {
	w.Fixed(m.ReqID[:]).U32(m.EnergyWh).Fixed(m.MAC[:])
}
func (m *v2vMsg) get(r *wire.Reader) {
	r.FixedInto(m.ReqID[:])
	m.EnergyWh = r.U32()
	r.FixedInto(m.MAC[:])
}

// inquiryReplyMsg answers a home vehicle's inquiry about the station.
type inquiryReplyMsg struct {
	ActiveSessions uint32
	PoolWh         uint32
	MAC            [32]byte
}

func (m *inquiryReplyMsg) kind() uint8 { return msgInquiryReply }
func (m *inquiryReplyMsg) put(w *wire.Builder) {
	w.U32(m.ActiveSessions).U32(m.PoolWh).Fixed(m.MAC[:])
}
func (m *inquiryReplyMsg) get(r *wire.Reader) {
	m.ActiveSessions, m.PoolWh = r.U32(), r.U32()
	r.FixedInto(m.MAC[:])
}

// groupSync is one group's list as a LAG needs it: its version, its
// length (the keys themselves went ahead in groupKeysMsg chunks, or the
// LAG held them) and which members are revoked. A sync lists only the
// groups that changed since what the LAG holds.
type groupSync struct {
	Group   string
	Version uint64
	Count   uint32
	Revoked []uint32
}

// syncMsg brings a LAG up to date: revocations, group keys, linking bases.
type syncMsg struct {
	// Instance is random for each start of the CA: a LAG that sees it
	// change knows the CA forgot every session (they are not durable), so
	// its resumption tickets lead nowhere.
	Instance   [16]byte
	CRLVersion uint64
	RevokedAt  int64 // time of the latest revocation
	// CRLSame: the LAG holds this version's serials already; else the
	// list is the CRLCount serials of the crlChunkMsg that came ahead.
	CRLSame     bool
	CRLCount    uint32
	Serials     [][16]byte // filled by the LAG from the chunks; not on the wire
	RevokedLAGs []uint64
	Groups      []groupSync
	Scopes      []ScopeBase
}

func (m *syncMsg) kind() uint8 { return msgSync }
func (m *syncMsg) put(w *wire.Builder) {
	w.Fixed(m.Instance[:]).U64(m.CRLVersion).I64(m.RevokedAt).U8(b2u(m.CRLSame)).U32(m.CRLCount)
	w.Count(len(m.RevokedLAGs))
	for _, s := range m.RevokedLAGs {
		w.U64(s)
	}
	w.Count(len(m.Groups))
	for _, g := range m.Groups {
		w.String(g.Group).U64(g.Version).U32(g.Count)
		w.Count(len(g.Revoked))
		for _, i := range g.Revoked {
			w.U32(i)
		}
	}
	w.Count(len(m.Scopes))
	for i := range m.Scopes {
		m.Scopes[i].write(w)
	}
}
func (m *syncMsg) get(r *wire.Reader) {
	r.FixedInto(m.Instance[:])
	m.CRLVersion, m.RevokedAt = r.U64(), r.I64()
	m.CRLSame, m.CRLCount = u2b(r), r.U32()
	m.RevokedLAGs = make([]uint64, r.Count(maxList, 8))
	for i := range m.RevokedLAGs {
		m.RevokedLAGs[i] = r.U64()
	}
	m.Groups = make([]groupSync, r.Count(maxGroups, 20))
	for i := range m.Groups {
		g := &m.Groups[i]
		g.Group = r.String(MaxID)
		g.Version, g.Count = r.U64(), r.U32()
		g.Revoked = make([]uint32, r.Count(maxList, 4))
		for j := range g.Revoked {
			g.Revoked[j] = r.U32()
		}
	}
	m.Scopes = make([]ScopeBase, r.Count(1024, 4+8+32+64))
	for i := range m.Scopes {
		m.Scopes[i] = readScopeBase(r)
	}
}

type groupAddMsg struct {
	Group string
	Index uint32
	Key   [32]byte
}

func (m *groupAddMsg) kind() uint8         { return msgGroupAdd }
func (m *groupAddMsg) put(w *wire.Builder) { w.String(m.Group).U32(m.Index).Fixed(m.Key[:]) }
func (m *groupAddMsg) get(r *wire.Reader) {
	m.Group, m.Index = r.String(MaxID), r.U32()
	r.FixedInto(m.Key[:])
}

// verifyEntry is one session's evidence, forwarded by the LAG for the CA's
// own check.
type verifyEntry struct {
	Binding   [32]byte
	Challenge [32]byte
	Scheme    Scheme
	Role      Role
	Epoch     int64
	Cred      []byte
	Sig       []byte
}

type verifyMsg struct{ Entries []verifyEntry }

func (m *verifyMsg) kind() uint8 { return msgVerify }
func (m *verifyMsg) put(w *wire.Builder) {
	w.Count(len(m.Entries))
	for _, e := range m.Entries {
		w.Fixed(e.Binding[:]).Fixed(e.Challenge[:]).U8(uint8(e.Scheme)).U8(uint8(e.Role)).I64(e.Epoch).
			Bytes(e.Cred).Bytes(e.Sig)
	}
}
func (m *verifyMsg) get(r *wire.Reader) {
	m.Entries = make([]verifyEntry, r.Count(maxBatch, 90))
	for i := range m.Entries {
		e := &m.Entries[i]
		r.FixedInto(e.Binding[:])
		r.FixedInto(e.Challenge[:])
		e.Scheme, e.Role, e.Epoch = Scheme(r.U8()), Role(r.U8()), r.I64()
		e.Cred = r.Bytes(maxCred)
		e.Sig = r.Bytes(maxSigLen)
	}
}

type verdict struct {
	Binding [32]byte
	Code    uint8 // 0: permitted
	Permit  []byte
}

type verdictsMsg struct{ Verdicts []verdict }

func (m *verdictsMsg) kind() uint8 { return msgVerdicts }
func (m *verdictsMsg) put(w *wire.Builder) {
	w.Count(len(m.Verdicts))
	for _, v := range m.Verdicts {
		w.Fixed(v.Binding[:]).U8(v.Code).Bytes(v.Permit)
	}
}
func (m *verdictsMsg) get(r *wire.Reader) {
	m.Verdicts = make([]verdict, r.Count(maxBatch, 37))
	for i := range m.Verdicts {
		v := &m.Verdicts[i]
		r.FixedInto(v.Binding[:])
		v.Code = r.U8()
		v.Permit = r.Bytes(maxPermitLen)
	}
}

type resumedNoteMsg struct {
	Binding [32]byte
	Origin  [32]byte // binding of the fully authenticated session the ticket came from
	Role    Role
}

func (m *resumedNoteMsg) kind() uint8 { return msgResumedNote }
func (m *resumedNoteMsg) put(w *wire.Builder) {
	w.Fixed(m.Binding[:]).Fixed(m.Origin[:]).U8(uint8(m.Role))
}
func (m *resumedNoteMsg) get(r *wire.Reader) {
	r.FixedInto(m.Binding[:])
	r.FixedInto(m.Origin[:])
	m.Role = Role(r.U8())
}

type terminateMsg struct {
	Binding [32]byte
	Code    uint8
}

func (m *terminateMsg) kind() uint8         { return msgTerminate }
func (m *terminateMsg) put(w *wire.Builder) { w.Fixed(m.Binding[:]).U8(m.Code) }
func (m *terminateMsg) get(r *wire.Reader) {
	r.FixedInto(m.Binding[:])
	m.Code = r.U8()
}

type dischargeReqMsg struct{ Request []byte }

func (m *dischargeReqMsg) kind() uint8         { return msgDischargeReq }
func (m *dischargeReqMsg) put(w *wire.Builder) { w.Bytes(m.Request) }
func (m *dischargeReqMsg) get(r *wire.Reader)  { m.Request = r.Bytes(maxRequest) }

type answerFwdMsg struct {
	Binding [32]byte
	Answer  answerMsg
}

func (m *answerFwdMsg) kind() uint8 { return msgAnswerFwd }
func (m *answerFwdMsg) put(w *wire.Builder) {
	w.Fixed(m.Binding[:])
	m.Answer.put(w)
}
func (m *answerFwdMsg) get(r *wire.Reader) {
	r.FixedInto(m.Binding[:])
	m.Answer.get(r)
}

type statusFwdMsg struct {
	Binding [32]byte
	Status  statusMsg
}

func (m *statusFwdMsg) kind() uint8 { return msgStatusFwd }
func (m *statusFwdMsg) put(w *wire.Builder) {
	w.Fixed(m.Binding[:])
	m.Status.put(w)
}
func (m *statusFwdMsg) get(r *wire.Reader) {
	r.FixedInto(m.Binding[:])
	m.Status.get(r)
}

// Aggregate is what the CA tells a LAG about many vehicles at once: it is
// released only when at least the CA's threshold of vehicles contributed.
type Aggregate struct {
	ReqID   [16]byte // zero for status aggregates
	Count   uint32   // vehicles that contributed
	TotalW  int64    // discharge: power agreed in total, W
	TotalWh int64    // status: energy reported in total, Wh
}

// replyFwdMsg carries a CA reply for one vehicle, and an aggregate for the
// LAG when the threshold is met.
type replyFwdMsg struct {
	k      uint8
	Reply  []byte
	HasAgg bool
	Agg    Aggregate
}

func (m *replyFwdMsg) kind() uint8 { return m.k }
func (m *replyFwdMsg) put(w *wire.Builder) {
	w.Bytes(m.Reply).U8(b2u(m.HasAgg))
	if m.HasAgg {
		w.Fixed(m.Agg.ReqID[:]).U32(m.Agg.Count).I64(m.Agg.TotalW).I64(m.Agg.TotalWh)
	}
}
func (m *replyFwdMsg) get(r *wire.Reader) {
	m.Reply = r.Bytes(maxReplyEnc)
	m.HasAgg = u2b(r)
	if m.HasAgg {
		r.FixedInto(m.Agg.ReqID[:])
		m.Agg.Count, m.Agg.TotalW, m.Agg.TotalWh = r.U32(), r.I64(), r.I64()
	}
}

// enrolBVMsg registers a vehicle (or refreshes its credentials).
type enrolBVMsg struct {
	// Token is the vehicle's enrolment credential (admission.go), needed
	// by a new identity only: an enrolled one may send zeros.
	Token       [32]byte
	RealID      string
	Group       string
	IdentityKey [32]byte // Ed25519: proves the same vehicle on later refills
	RingKey     [32]byte // LSAG public key
	PseudoKeys  [][32]byte
	// HaveKeys is how many keys of the group's list the vehicle holds
	// (the first ones): the answer carries the rest.
	HaveKeys uint32
	Sig      [64]byte // by IdentityKey over the channel binding and the rest
}

func (m *enrolBVMsg) kind() uint8 { return msgEnrolBV }
func (m *enrolBVMsg) body() []byte {
	w := wire.NewBuilder(nil).Fixed(m.Token[:]).String(m.RealID).String(m.Group).Fixed(m.IdentityKey[:]).
		Fixed(m.RingKey[:]).Count(len(m.PseudoKeys))
	for _, k := range m.PseudoKeys {
		w.Fixed(k[:])
	}
	return w.U32(m.HaveKeys).Out()
}
func (m *enrolBVMsg) put(w *wire.Builder) { w.Fixed(m.body()).Fixed(m.Sig[:]) }
func (m *enrolBVMsg) get(r *wire.Reader) {
	r.FixedInto(m.Token[:])
	m.RealID, m.Group = r.String(MaxID), r.String(MaxID)
	r.FixedInto(m.IdentityKey[:])
	r.FixedInto(m.RingKey[:])
	m.PseudoKeys = make([][32]byte, r.Count(maxPseudo, 32))
	for i := range m.PseudoKeys {
		r.FixedInto(m.PseudoKeys[i][:])
	}
	m.HaveKeys = r.U32()
	r.FixedInto(m.Sig[:])
}

// enrolBVOKMsg answers an enrolment: the pseudonym certificates, the
// signed head of the group's list (the keys the vehicle lacked came ahead
// in groupKeysMsg chunks) and the vehicle's index in it.
type enrolBVOKMsg struct {
	Certs     [][]byte
	Head      []byte
	RingIndex uint32
}

func (m *enrolBVOKMsg) kind() uint8 { return msgEnrolBVOK }
func (m *enrolBVOKMsg) put(w *wire.Builder) {
	w.Count(len(m.Certs))
	for _, c := range m.Certs {
		w.Bytes(c)
	}
	w.Bytes(m.Head).U32(m.RingIndex)
}
func (m *enrolBVOKMsg) get(r *wire.Reader) {
	m.Certs = make([][]byte, r.Count(maxPseudo, 4))
	for i := range m.Certs {
		m.Certs[i] = r.Bytes(pseudonym.MaxCertSize)
	}
	m.Head = r.Bytes(4 + MaxID + 8 + 4 + 32 + 4 + 4*maxList + 64)
	m.RingIndex = r.U32()
}

type enrolLAGMsg struct {
	Token    [32]byte
	LAGID    string
	Group    string
	NoiseKey [32]byte
	SignKey  [32]byte
	Sig      [64]byte // by SignKey over the channel binding and the rest
}

func (m *enrolLAGMsg) kind() uint8 { return msgEnrolLAG }
func (m *enrolLAGMsg) body() []byte {
	return wire.NewBuilder(nil).Fixed(m.Token[:]).String(m.LAGID).String(m.Group).Fixed(m.NoiseKey[:]).Fixed(m.SignKey[:]).Out()
}
func (m *enrolLAGMsg) put(w *wire.Builder) { w.Fixed(m.body()).Fixed(m.Sig[:]) }
func (m *enrolLAGMsg) get(r *wire.Reader) {
	r.FixedInto(m.Token[:])
	m.LAGID, m.Group = r.String(MaxID), r.String(MaxID)
	r.FixedInto(m.NoiseKey[:])
	r.FixedInto(m.SignKey[:])
	r.FixedInto(m.Sig[:])
}

type enrolLAGOKMsg struct{ Cert []byte }

func (m *enrolLAGOKMsg) kind() uint8         { return msgEnrolLAGOK }
func (m *enrolLAGOKMsg) put(w *wire.Builder) { w.Bytes(m.Cert) }
func (m *enrolLAGOKMsg) get(r *wire.Reader)  { m.Cert = r.Bytes(1024) }

// authStatement is what a vehicle signs to authenticate: the channel
// binding (the Noise handshake hash, which covers the LAG's hello and both
// ephemeral keys), the LAG's fresh challenge, the LAG it believes it talks
// to, the scheme, its role, the linking epoch, and its credential.
func authStatement(binding, challenge [32]byte, lagID string, s Scheme, role Role, epoch int64, cred []byte) []byte {
	h := hash32(cred)
	return wire.NewBuilder([]byte(domAuth)).Fixed(binding[:]).Fixed(challenge[:]).String(lagID).U8(uint8(s)).
		U8(uint8(role)).I64(epoch).Fixed(h[:]).Out()
}

// anonStatement is what a vehicle signs under its session credential for a
// later message of the session (an answer or a status report).
func anonStatement(binding [32]byte, kind uint8, id []byte, sealed []byte) []byte {
	return wire.NewBuilder([]byte(domAnon)).Fixed(binding[:]).U8(kind).Bytes(id).Bytes(sealed).Out()
}
