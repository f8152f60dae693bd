package auth

import (
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/hpke"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"slices"
	"time"

	"github.com/flynn/noise"

	"github.com/gridveil/gridveil/auth/lsag"
	"github.com/gridveil/gridveil/auth/wire"
)

// Signature domains: every signed object starts with its own string, so a
// signature on one kind of object can never pass for another.
const (
	domLAGCert   = "gridveil/lag-cert/v1\x00"
	domScope     = "gridveil/scope-base/v1\x00"
	domGroup     = "gridveil/group-list/v2\x00"
	domCRL       = "gridveil/crl/v1\x00"
	domPermit    = "gridveil/permit/v1\x00"
	domDischarge = "gridveil/discharge-request/v1\x00"
	domAck       = "gridveil/discharge-ack/v1\x00"
	domStatus    = "gridveil/status-reply/v1\x00"
	domBatch     = "gridveil/batch-confirm/v1\x00"
	domAuth      = "gridveil/bv-auth/v1\x00"
	domAnon      = "gridveil/bv-message/v1\x00"
	domEnrol     = "gridveil/enrol/v1\x00"
)

func sign(priv ed25519.PrivateKey, domain string, body []byte) (sig [64]byte) {
	copy(sig[:], ed25519.Sign(priv, append([]byte(domain), body...)))
	return sig
}

func verify(pub ed25519.PublicKey, domain string, body []byte, sig [64]byte) bool {
	return len(pub) == ed25519.PublicKeySize && ed25519.Verify(pub, append([]byte(domain), body...), sig[:])
}

// CAPublic is what every party must know of the CA, obtained out of band
// (the CA's data directory writes it as public.key).
type CAPublic struct {
	SignKey  [32]byte // Ed25519: certificates, permits, lists, requests
	NoiseKey [32]byte // X25519 static key of the CA's Noise endpoints
	TraceKey [32]byte // X25519 HPKE key: tracing tags, answers, statuses
}

// Marshal encodes the public keys (96 bytes).
func (p CAPublic) Marshal() []byte {
	return wire.NewBuilder(nil).Fixed(p.SignKey[:]).Fixed(p.NoiseKey[:]).Fixed(p.TraceKey[:]).Out()
}

// ParseCAPublic decodes Marshal's output.
func ParseCAPublic(b []byte) (CAPublic, error) {
	var p CAPublic
	r := wire.NewReader(b)
	r.FixedInto(p.SignKey[:])
	r.FixedInto(p.NoiseKey[:])
	r.FixedInto(p.TraceKey[:])
	if err := r.Finish(); err != nil {
		return p, fmt.Errorf("%w: CA public key: %w", ErrMalformed, err)
	}
	if _, err := hpke.NewDHKEMPublicKey(mustX25519Pub(p.TraceKey[:])); err != nil {
		return p, fmt.Errorf("%w: CA tracing key", ErrMalformed)
	}
	return p, nil
}

func mustX25519Pub(b []byte) *ecdh.PublicKey {
	k, err := ecdh.X25519().NewPublicKey(b)
	if err != nil { // only a wrong length fails, and callers pass 32 bytes
		k, _ = ecdh.X25519().NewPublicKey(make([]byte, 32))
	}
	return k
}

func (p CAPublic) sign() ed25519.PublicKey { return ed25519.PublicKey(p.SignKey[:]) }

func (p CAPublic) trace() (hpke.PublicKey, error) {
	k, err := ecdh.X25519().NewPublicKey(p.TraceKey[:])
	if err != nil {
		return nil, fmt.Errorf("CA tracing key: %w", err)
	}
	return hpke.NewDHKEMPublicKey(k)
}

// CAKeys are the CA's secrets.
type CAKeys struct {
	Sign       ed25519.PrivateKey
	Noise      noise.DHKey
	Trace      *ecdh.PrivateKey
	LinkSecret [32]byte // derives the LSAG linking bases, see lsag.DeriveBase
	EnrolToken [32]byte // the shared enrolment token of earlier versions: admits only with CAConfig.SharedToken (a migration)
}

// GenerateCAKeys draws fresh CA keys from crypto/rand.
func GenerateCAKeys() (*CAKeys, error) {
	k := new(CAKeys)
	var err error
	if _, k.Sign, err = ed25519.GenerateKey(rand.Reader); err != nil {
		return nil, err
	}
	if k.Noise, err = noise.DH25519.GenerateKeypair(rand.Reader); err != nil {
		return nil, err
	}
	if k.Trace, err = ecdh.X25519().GenerateKey(rand.Reader); err != nil {
		return nil, err
	}
	if _, err := rand.Read(k.LinkSecret[:]); err != nil {
		return nil, err
	}
	if _, err := rand.Read(k.EnrolToken[:]); err != nil {
		return nil, err
	}
	return k, nil
}

// Public returns the keys every other party needs.
func (k *CAKeys) Public() CAPublic {
	var p CAPublic
	copy(p.SignKey[:], k.Sign.Public().(ed25519.PublicKey))
	copy(p.NoiseKey[:], k.Noise.Public)
	copy(p.TraceKey[:], k.Trace.PublicKey().Bytes())
	return p
}

// Marshal encodes the secrets (160 bytes); store them with mode 0600.
func (k *CAKeys) Marshal() []byte {
	return wire.NewBuilder(nil).Fixed(k.Sign.Seed()).Fixed(k.Noise.Private).Fixed(k.Trace.Bytes()).
		Fixed(k.LinkSecret[:]).Fixed(k.EnrolToken[:]).Out()
}

// ParseCAKeys decodes Marshal's output.
func ParseCAKeys(b []byte) (*CAKeys, error) {
	r := wire.NewReader(b)
	seed, np, tp := r.Fixed(32), r.Fixed(32), r.Fixed(32)
	k := new(CAKeys)
	r.FixedInto(k.LinkSecret[:])
	r.FixedInto(k.EnrolToken[:])
	if err := r.Finish(); err != nil {
		return nil, fmt.Errorf("%w: CA keys: %w", ErrMalformed, err)
	}
	k.Sign = ed25519.NewKeyFromSeed(seed)
	var err error
	if k.Noise, err = dhKeyFrom(np); err != nil {
		return nil, err
	}
	if k.Trace, err = ecdh.X25519().NewPrivateKey(tp); err != nil {
		return nil, fmt.Errorf("%w: CA tracing key: %w", ErrMalformed, err)
	}
	return k, nil
}

func dhKeyFrom(priv []byte) (noise.DHKey, error) {
	k, err := ecdh.X25519().NewPrivateKey(priv)
	if err != nil {
		return noise.DHKey{}, fmt.Errorf("%w: X25519 key: %w", ErrMalformed, err)
	}
	return noise.DHKey{Private: k.Bytes(), Public: k.PublicKey().Bytes()}, nil
}

// LAGCert is the CA's certificate on a local aggregator: its identifier,
// group (the utility it belongs to, which decides home or visiting), Noise
// static key and batch-signing key.
type LAGCert struct {
	Serial    uint64
	LAGID     string
	Group     string
	NoiseKey  [32]byte
	SignKey   [32]byte
	NotBefore int64
	NotAfter  int64
	Sig       [64]byte
}

func (c *LAGCert) body() []byte {
	return wire.NewBuilder(nil).U64(c.Serial).String(c.LAGID).String(c.Group).Fixed(c.NoiseKey[:]).
		Fixed(c.SignKey[:]).I64(c.NotBefore).I64(c.NotAfter).Out()
}

// Marshal encodes the certificate.
func (c *LAGCert) Marshal() []byte { return append(c.body(), c.Sig[:]...) }

func readLAGCert(r *wire.Reader) LAGCert {
	var c LAGCert
	c.Serial = r.U64()
	c.LAGID = r.String(MaxID)
	c.Group = r.String(MaxID)
	r.FixedInto(c.NoiseKey[:])
	r.FixedInto(c.SignKey[:])
	c.NotBefore = r.I64()
	c.NotAfter = r.I64()
	r.FixedInto(c.Sig[:])
	return c
}

// ParseLAGCert decodes a certificate (without checking it).
func ParseLAGCert(b []byte) (*LAGCert, error) {
	r := wire.NewReader(b)
	c := readLAGCert(r)
	if err := r.Finish(); err != nil {
		return nil, fmt.Errorf("%w: LAG certificate: %w", ErrMalformed, err)
	}
	return &c, nil
}

// Verify checks the CA's signature and the validity window.
func (c *LAGCert) Verify(ca CAPublic, now time.Time) error {
	if !verify(ca.sign(), domLAGCert, c.body(), c.Sig) {
		return fmt.Errorf("%w: LAG certificate of %q", ErrUntrusted, c.LAGID)
	}
	if t := now.Unix(); t < c.NotBefore || t >= c.NotAfter {
		return fmt.Errorf("%w: LAG certificate of %q (valid %s to %s)", ErrExpired, c.LAGID,
			time.Unix(c.NotBefore, 0).UTC().Format(time.RFC3339), time.Unix(c.NotAfter, 0).UTC().Format(time.RFC3339))
	}
	return nil
}

// ScopeBase is the CA-signed LSAG linking base of one LAG in one epoch:
// T = t G with t known only to the CA (lsag.DeriveBase).
type ScopeBase struct {
	LAGID string
	Epoch int64
	Base  [32]byte
	Sig   [64]byte
}

func (s *ScopeBase) body() []byte {
	return wire.NewBuilder(nil).String(s.LAGID).I64(s.Epoch).Fixed(s.Base[:]).Out()
}

func (s *ScopeBase) write(w *wire.Builder) { w.Fixed(s.body()).Fixed(s.Sig[:]) }

func readScopeBase(r *wire.Reader) ScopeBase {
	var s ScopeBase
	s.LAGID = r.String(MaxID)
	s.Epoch = r.I64()
	r.FixedInto(s.Base[:])
	r.FixedInto(s.Sig[:])
	return s
}

func scopeName(lagID string, epoch int64) []byte {
	return wire.NewBuilder(nil).String(lagID).I64(epoch).Out()
}

// GroupList is the CA's signed list of LSAG public keys of one group.
// Entries are never removed: a revoked member's index is listed in Revoked,
// so indices stay stable across versions.
type GroupList struct {
	Group   string
	Version uint64
	Keys    [][32]byte
	Revoked []uint32 // ascending
	Sig     [64]byte
}

// A group list is signed through its head: the group, version, length, a
// hash chain over its keys and the revoked indices. The chain is extended
// by one hash per new member, so the CA signs a list at every enrolment in
// constant time (the whole list was signed each time before: quadratic in
// the group's size), and a vehicle that holds the first keys of the list
// gets only the rest, checks the chain over the whole list it now holds,
// and the signature on the head.
const domGroupChain = "gridveil/group-chain/v1\x00"

// groupChainStart is the chain of a group's empty list.
func groupChainStart(group string) [32]byte {
	return sha256.Sum256(append([]byte(domGroupChain), group...))
}

// groupChainNext extends a chain by one key.
func groupChainNext(h, k [32]byte) [32]byte {
	var b [64]byte
	copy(b[:32], h[:])
	copy(b[32:], k[:])
	return sha256.Sum256(b[:])
}

// groupChain is the chain over a whole list.
func groupChain(group string, keys [][32]byte) [32]byte {
	h := groupChainStart(group)
	for _, k := range keys {
		h = groupChainNext(h, k)
	}
	return h
}

// groupHead is what the CA signs of a group list.
type groupHead struct {
	Group   string
	Version uint64
	Count   uint32
	Chain   [32]byte
	Revoked []uint32 // ascending
	Sig     [64]byte
}

func (h *groupHead) body() []byte {
	w := wire.NewBuilder(nil).String(h.Group).U64(h.Version).U32(h.Count).Fixed(h.Chain[:]).Count(len(h.Revoked))
	for _, i := range h.Revoked {
		w.U32(i)
	}
	return w.Out()
}

func (h *groupHead) marshal() []byte { return append(h.body(), h.Sig[:]...) }

func parseGroupHead(b []byte) (*groupHead, error) {
	r := wire.NewReader(b)
	h := &groupHead{Group: r.String(MaxID), Version: r.U64(), Count: r.U32()}
	r.FixedInto(h.Chain[:])
	h.Revoked = make([]uint32, r.Count(maxList, 4))
	for i := range h.Revoked {
		h.Revoked[i] = r.U32()
		if h.Revoked[i] >= h.Count || (i > 0 && h.Revoked[i] <= h.Revoked[i-1]) {
			r.Failf("revoked index %d out of order or range", h.Revoked[i])
		}
	}
	r.FixedInto(h.Sig[:])
	if err := r.Finish(); err != nil {
		return nil, fmt.Errorf("%w: group list head: %w", ErrMalformed, err)
	}
	return h, nil
}

// head is the list's signed head, its chain computed over its keys.
func (g *GroupList) head() *groupHead {
	return &groupHead{Group: g.Group, Version: g.Version, Count: uint32(len(g.Keys)), Chain: groupChain(g.Group, g.Keys), Revoked: g.Revoked, Sig: g.Sig}
}

// Marshal encodes the whole list, keys included (sized up front: a group
// of 10^4 members is a 320 KB list).
func (g *GroupList) Marshal() []byte {
	size := 4 + len(g.Group) + 8 + 4 + 32*len(g.Keys) + 4 + 4*len(g.Revoked) + len(g.Sig)
	w := wire.NewBuilder(make([]byte, 0, size)).String(g.Group).U64(g.Version).Count(len(g.Keys))
	for _, k := range g.Keys {
		w.Fixed(k[:])
	}
	w.Count(len(g.Revoked))
	for _, i := range g.Revoked {
		w.U32(i)
	}
	return append(w.Out(), g.Sig[:]...)
}

// ParseGroupList decodes a list (without checking the signature).
func ParseGroupList(b []byte) (*GroupList, error) {
	r := wire.NewReader(b)
	g := &GroupList{Group: r.String(MaxID), Version: r.U64()}
	g.Keys = make([][32]byte, r.Count(maxList, 32))
	for i := range g.Keys {
		r.FixedInto(g.Keys[i][:])
	}
	g.Revoked = make([]uint32, r.Count(maxList, 4))
	for i := range g.Revoked {
		g.Revoked[i] = r.U32()
		if g.Revoked[i] >= uint32(len(g.Keys)) || (i > 0 && g.Revoked[i] <= g.Revoked[i-1]) {
			r.Failf("revoked index %d out of order or range", g.Revoked[i])
		}
	}
	r.FixedInto(g.Sig[:])
	if err := r.Finish(); err != nil {
		return nil, fmt.Errorf("%w: group list: %w", ErrMalformed, err)
	}
	return g, nil
}

// Verify checks the CA's signature on the list's head, over the chain of
// its keys.
func (g *GroupList) Verify(ca CAPublic) error {
	if !verify(ca.sign(), domGroup, g.head().body(), g.Sig) {
		return fmt.Errorf("%w: group list %q v%d", ErrBadSignature, g.Group, g.Version)
	}
	return nil
}

// IsRevoked reports whether member i is revoked.
func (g *GroupList) IsRevoked(i uint32) bool {
	_, found := slices.BinarySearch(g.Revoked, i)
	return found
}

// Permit is the CA's grant of one session: after checking the vehicle's
// credential (and the LAG), the CA binds the session's handshake hash to
// the LAG, the vehicle's group attribute, role and services.
type Permit struct {
	Binding  [32]byte
	LAGID    string
	Scheme   Scheme
	Role     Role
	Group    string
	Home     bool
	Service  Service
	IssuedAt int64
	NotAfter int64
	Sig      [64]byte
}

func (p *Permit) body() []byte {
	home := uint8(0)
	if p.Home {
		home = 1
	}
	return wire.NewBuilder(nil).Fixed(p.Binding[:]).String(p.LAGID).U8(uint8(p.Scheme)).U8(uint8(p.Role)).
		String(p.Group).U8(home).U16(uint16(p.Service)).I64(p.IssuedAt).I64(p.NotAfter).Out()
}

// Marshal encodes the permit.
func (p *Permit) Marshal() []byte { return append(p.body(), p.Sig[:]...) }

// ParsePermit decodes a permit.
func ParsePermit(b []byte) (*Permit, error) {
	r := wire.NewReader(b)
	p := new(Permit)
	r.FixedInto(p.Binding[:])
	p.LAGID = r.String(MaxID)
	p.Scheme = Scheme(r.U8())
	p.Role = Role(r.U8())
	p.Group = r.String(MaxID)
	home := r.U8()
	p.Home = home == 1
	p.Service = Service(r.U16())
	p.IssuedAt = r.I64()
	p.NotAfter = r.I64()
	r.FixedInto(p.Sig[:])
	if home > 1 {
		r.Failf("home flag %d", home)
	}
	if err := r.Finish(); err != nil {
		return nil, fmt.Errorf("%w: permit: %w", ErrMalformed, err)
	}
	return p, nil
}

// DischargeRequest is the CA's signed request that storage and supply
// vehicles at one LAG discharge.
type DischargeRequest struct {
	ID     [16]byte
	LAGID  string
	Mode   Mode
	PowerW uint32 // asked of each agreeing vehicle
	Start  int64
	End    int64
	Sig    [64]byte
}

func (d *DischargeRequest) body() []byte {
	return wire.NewBuilder(nil).Fixed(d.ID[:]).String(d.LAGID).U8(uint8(d.Mode)).U32(d.PowerW).I64(d.Start).I64(d.End).Out()
}

// Marshal encodes the request.
func (d *DischargeRequest) Marshal() []byte { return append(d.body(), d.Sig[:]...) }

// ParseDischargeRequest decodes a request.
func ParseDischargeRequest(b []byte) (*DischargeRequest, error) {
	r := wire.NewReader(b)
	d := new(DischargeRequest)
	r.FixedInto(d.ID[:])
	d.LAGID = r.String(MaxID)
	d.Mode = Mode(r.U8())
	d.PowerW = r.U32()
	d.Start = r.I64()
	d.End = r.I64()
	r.FixedInto(d.Sig[:])
	if d.Mode != Centralized && d.Mode != Distributed {
		r.Failf("mode %d", d.Mode)
	}
	if err := r.Finish(); err != nil {
		return nil, fmt.Errorf("%w: discharge request: %w", ErrMalformed, err)
	}
	return d, nil
}

// caReply is the CA's signed answer to one vehicle through a LAG: an
// acknowledgement of a discharge answer (Seq is 0 and ReqID set) or a reply
// to a status report (ReqID zero, Seq the report's number). Sealed is
// readable only with the key the vehicle put in its sealed message.
type caReply struct {
	Binding [32]byte
	ReqID   [16]byte
	Seq     uint32
	Sealed  []byte
	Sig     [64]byte
}

func (a *caReply) body() []byte {
	return wire.NewBuilder(nil).Fixed(a.Binding[:]).Fixed(a.ReqID[:]).U32(a.Seq).Bytes(a.Sealed).Out()
}

func (a *caReply) marshal() []byte { return append(a.body(), a.Sig[:]...) }

func parseCAReply(b []byte) (*caReply, error) {
	r := wire.NewReader(b)
	a := new(caReply)
	r.FixedInto(a.Binding[:])
	r.FixedInto(a.ReqID[:])
	a.Seq = r.U32()
	a.Sealed = r.Bytes(replySize)
	r.FixedInto(a.Sig[:])
	if err := r.Finish(); err != nil {
		return nil, fmt.Errorf("%w: CA reply: %w", ErrMalformed, err)
	}
	return a, nil
}

// hash32 is SHA-256.
func hash32(parts ...[]byte) [32]byte {
	h := sha256.New()
	for _, p := range parts {
		h.Write(p)
	}
	return [32]byte(h.Sum(nil))
}

// parseBase decodes a linking base point.
func parseBase(b [32]byte) error {
	_, err := lsag.ParsePoint(b[:])
	return err
}
