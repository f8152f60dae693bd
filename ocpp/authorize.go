package ocpp

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"sync"

	"github.com/gridveil/gridveil/auth"
)

// TokenType is the idToken type of a session token: "Central", a token
// the central system (here the LAG, with the vehicle) issued, not a
// contract id (eMAID) or a card's UID.
const TokenType = "Central"

// tokenLabel separates session tokens from every other use of a channel
// binding.
const tokenLabel = "gridveil/ocpp/idToken/1\x00"

// SessionToken is the idToken a vehicle shows a charging station for its
// anonymous C6 session with the LAG lagID whose channel binding is binding
// (auth.BVSession.Binding on the vehicle, auth.LAGSessionView.Binding at
// the LAG): the first 16 bytes of SHA-256(label, lagID, binding), as 32
// hex digits. Both sides derive it from the session without another
// message, as ISO 15118 would carry a contract id to the station. A
// session's binding hashes its fresh ephemeral keys, so two sessions of
// one vehicle give unrelated tokens, and the token says nothing the LAG
// does not already hold.
func SessionToken(lagID string, binding [32]byte) IDToken {
	h := sha256.New()
	h.Write([]byte(tokenLabel))
	h.Write([]byte(lagID))
	h.Write([]byte{0})
	h.Write(binding[:])
	sum := h.Sum(nil)
	return IDToken{IDToken: hex.EncodeToString(sum[:16]), Type: TokenType}
}

// Authorization statuses the CSMS answers with (OCPP 2.0.1
// AuthorizationStatusEnumType).
const (
	StatusAccepted     = "Accepted"
	StatusInvalid      = "Invalid"      // not a session token at all
	StatusUnknown      = "Unknown"      // well formed, but no session held at this LAG has it
	StatusConcurrentTx = "ConcurrentTx" // already in a transaction that has not ended
)

// Authorizer tells whether an admitted session holds a token. It is asked
// at every Authorize and every TransactionEvent that carries an idToken,
// so a session that ended (or was revoked) voids its token at once.
type Authorizer interface {
	Holds(token IDToken) bool
}

// TokenLister is an Authorizer that can list every token it holds at
// once, so that the CSMS can find the running transactions whose session
// ended with one lookup (StopVoided) instead of one per transaction.
type TokenLister interface {
	Authorizer
	HeldTokens() map[string]bool
}

// LAGSessions is the Authorizer of a LAG: a token is held when it is the
// SessionToken of one of the LAG's active sessions, asked afresh at each
// check, so that a session's end voids its token at once. Make it with
// NewLAGSessions.
type LAGSessions struct {
	lagID  string
	active func() []auth.LAGSessionView

	mu     sync.Mutex
	tokens map[string]string // binding (hex) -> its session token: one SHA-256 per session, not per check
}

// NewLAGSessions is the Authorizer of LAG lagID; active is the LAG
// server's read-only lookup of its active sessions
// (authnet.LAGServer.ActiveSessions).
func NewLAGSessions(lagID string, active func() []auth.LAGSessionView) *LAGSessions {
	return &LAGSessions{lagID: lagID, active: active, tokens: map[string]string{}}
}

// Holds implements Authorizer.
func (s *LAGSessions) Holds(tok IDToken) bool {
	if !wellFormed(tok) {
		return false
	}
	found := 0
	s.each(func(t string) { found |= subtle.ConstantTimeCompare([]byte(t), []byte(tok.IDToken)) })
	return found == 1
}

// HeldTokens implements TokenLister: the tokens of every active session.
func (s *LAGSessions) HeldTokens() map[string]bool {
	out := map[string]bool{}
	s.each(func(t string) { out[t] = true })
	return out
}

// each calls f with the token of every active session.
func (s *LAGSessions) each(f func(token string)) {
	views := s.active()
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.tokens) > 2*len(views)+64 {
		// Forget the tokens of sessions that ended.
		keep := make(map[string]string, len(views))
		for _, v := range views {
			if t, ok := s.tokens[v.Binding]; ok {
				keep[v.Binding] = t
			}
		}
		s.tokens = keep
	}
	for _, v := range views {
		t, ok := s.tokens[v.Binding]
		if !ok {
			var b [32]byte
			if n, err := hex.Decode(b[:], []byte(v.Binding)); err != nil || n != 32 {
				continue
			}
			t = SessionToken(s.lagID, b).IDToken
			s.tokens[v.Binding] = t
		}
		f(t)
	}
}

// wellFormed tells whether tok could be a SessionToken at all: type
// Central, 32 lower-case hex digits.
func wellFormed(tok IDToken) bool {
	if tok.Type != TokenType || len(tok.IDToken) != 32 {
		return false
	}
	for _, c := range []byte(tok.IDToken) {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}
