package auth

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/hpke"
	"crypto/rand"
	"crypto/sha256"
	"fmt"

	"github.com/gridveil/gridveil/auth/wire"
)

// Messages a vehicle seals to the CA travel through the LAG, which cannot
// read them. Their plaintexts have one fixed length each, whatever they
// say, so the ciphertext length says nothing either.

var (
	sealKDF  = hpke.HKDFSHA256()
	sealAEAD = hpke.ChaCha20Poly1305()
)

// Decision is a vehicle's answer to a discharge request.
type Decision uint8

// Decisions.
const (
	Decline Decision = 1
	Agree   Decision = 2
)

func (d Decision) String() string {
	if d == Agree {
		return "agree"
	}
	return "decline"
}

// StatusKind says what a status report announces; only the CA sees it.
type StatusKind uint8

// Status kinds.
const (
	StatusPeriodic     StatusKind = 1
	StatusFullyCharged StatusKind = 2
	StatusStopDischarg StatusKind = 3 // leaving the discharging state
)

func (k StatusKind) String() string {
	switch k {
	case StatusFullyCharged:
		return "fully-charged"
	case StatusStopDischarg:
		return "stop-discharging"
	}
	return "periodic"
}

// Battery is a vehicle's real battery state: only the vehicle and the CA
// see it.
type Battery struct {
	SOCPermille uint16 // state of charge, 0..1000
	EnergyWh    int32  // energy into (+) or out of (-) the battery this session
}

// answerPlain: reqID | decision | soc | energy | replyKey. 55 bytes.
const answerPlainSize = 16 + 1 + 2 + 4 + 32

// statusPlain: seq | kind | soc | energy | replyKey. 43 bytes.
const statusPlainSize = 4 + 1 + 2 + 4 + 32

// sealedAnswerSize and sealedStatusSize are the ciphertext sizes.
const (
	sealedAnswerSize = 32 + answerPlainSize + 16
	sealedStatusSize = 32 + statusPlainSize + 16
)

// replyPlain: kind | a | b, 17 bytes; replySize is its AES-GCM sealing.
const (
	replyPlainSize = 1 + 8 + 8
	replySize      = 12 + replyPlainSize + 16
)

func sealInfo(label string, binding [32]byte) []byte {
	return append([]byte("gridveil/seal/"+label+"/v1\x00"), binding[:]...)
}

func sealToCA(ca CAPublic, label string, binding [32]byte, plain []byte) ([]byte, error) {
	pk, err := ca.trace()
	if err != nil {
		return nil, err
	}
	ct, err := hpke.Seal(pk, sealKDF, sealAEAD, sealInfo(label, binding), plain)
	if err != nil {
		return nil, fmt.Errorf("sealing to the CA: %w", err)
	}
	return ct, nil
}

func openAtCA(k hpke.PrivateKey, label string, binding [32]byte, ct []byte, size int) ([]byte, error) {
	pt, err := hpke.Open(k, sealKDF, sealAEAD, sealInfo(label, binding), ct)
	if err != nil || len(pt) != size {
		return nil, fmt.Errorf("%w: sealed %s does not open", ErrMalformed, label)
	}
	return pt, nil
}

type answerPlain struct {
	ReqID    [16]byte
	Decision Decision
	Battery  Battery
	ReplyKey [32]byte
}

func (a *answerPlain) marshal() []byte {
	return wire.NewBuilder(nil).Fixed(a.ReqID[:]).U8(uint8(a.Decision)).U16(a.Battery.SOCPermille).
		U32(uint32(a.Battery.EnergyWh)).Fixed(a.ReplyKey[:]).Out()
}

func parseAnswerPlain(b []byte) (*answerPlain, error) {
	r := wire.NewReader(b)
	a := new(answerPlain)
	r.FixedInto(a.ReqID[:])
	a.Decision = Decision(r.U8())
	a.Battery.SOCPermille = r.U16()
	a.Battery.EnergyWh = int32(r.U32())
	r.FixedInto(a.ReplyKey[:])
	if a.Decision != Agree && a.Decision != Decline {
		r.Failf("decision %d", a.Decision)
	}
	if err := r.Finish(); err != nil {
		return nil, fmt.Errorf("%w: answer: %w", ErrMalformed, err)
	}
	return a, nil
}

type statusPlain struct {
	Seq      uint32
	Kind     StatusKind
	Battery  Battery
	ReplyKey [32]byte
}

func (s *statusPlain) marshal() []byte {
	return wire.NewBuilder(nil).U32(s.Seq).U8(uint8(s.Kind)).U16(s.Battery.SOCPermille).
		U32(uint32(s.Battery.EnergyWh)).Fixed(s.ReplyKey[:]).Out()
}

func parseStatusPlain(b []byte) (*statusPlain, error) {
	r := wire.NewReader(b)
	s := &statusPlain{Seq: r.U32(), Kind: StatusKind(r.U8())}
	s.Battery.SOCPermille = r.U16()
	s.Battery.EnergyWh = int32(r.U32())
	r.FixedInto(s.ReplyKey[:])
	if s.Kind < StatusPeriodic || s.Kind > StatusStopDischarg {
		r.Failf("status kind %d", s.Kind)
	}
	if err := r.Finish(); err != nil {
		return nil, fmt.Errorf("%w: status: %w", ErrMalformed, err)
	}
	return s, nil
}

// reply is what the CA tells one vehicle through the LAG, sealed with the
// vehicle's one-time reply key.
type reply struct {
	Kind uint8 // echoes the decision or status kind
	A, B int64 // decision: granted power W, window end; status: SOC, energy credited Wh
}

func sealReply(key [32]byte, aad []byte, r reply) ([]byte, error) {
	g, err := newGCM(key)
	if err != nil {
		return nil, err
	}
	nonce := make([]byte, 12, replySize)
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	plain := wire.NewBuilder(nil).U8(r.Kind).I64(r.A).I64(r.B).Out()
	return g.Seal(nonce, nonce, plain, aad), nil
}

func openReply(key [32]byte, aad, ct []byte) (reply, error) {
	g, err := newGCM(key)
	if err != nil {
		return reply{}, err
	}
	if len(ct) != replySize {
		return reply{}, fmt.Errorf("%w: reply of %d bytes", ErrMalformed, len(ct))
	}
	pt, err := g.Open(nil, ct[:12], ct[12:], aad)
	if err != nil {
		return reply{}, fmt.Errorf("%w: reply does not open", ErrBadMAC)
	}
	rd := wire.NewReader(pt)
	out := reply{Kind: rd.U8(), A: rd.I64(), B: rd.I64()}
	if err := rd.Finish(); err != nil {
		return reply{}, fmt.Errorf("%w: reply: %w", ErrMalformed, err)
	}
	return out, nil
}

func newGCM(key [32]byte) (cipher.AEAD, error) {
	b, err := aes.NewCipher(key[:])
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(b)
}

// mac is the HMAC-SHA256 authentication operator of seed 002 under key k.
func mac(k [32]byte, label string, parts ...[]byte) [32]byte {
	h := hmac.New(sha256.New, k[:])
	h.Write([]byte("gridveil/op/" + label + "/v1\x00"))
	for _, p := range parts {
		var n [4]byte
		n[0], n[1], n[2], n[3] = byte(len(p)>>24), byte(len(p)>>16), byte(len(p)>>8), byte(len(p))
		h.Write(n[:])
		h.Write(p)
	}
	return [32]byte(h.Sum(nil))
}

func macOK(k [32]byte, got [32]byte, label string, parts ...[]byte) bool {
	want := mac(k, label, parts...)
	return hmac.Equal(want[:], got[:])
}

func random32() ([32]byte, error) {
	var b [32]byte
	_, err := rand.Read(b[:])
	return b, err
}
