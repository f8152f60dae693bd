package ocpp

import (
	"encoding/hex"

	"github.com/gridveil/gridveil/auth"
)

// TokenType is the idToken type of a session token: "Central", a token
// the central system (here the LAG, with the vehicle) issued, not a
// contract id (eMAID) or a card's UID.
const TokenType = "Central"

// SessionToken is the idToken a vehicle shows a charging station for its
// anonymous C6 session with a LAG: the session's auth.StationToken
// (auth.BVSession.StationToken on the vehicle; the LAG indexes the same
// value under its session) as 32 lower-case hex digits, type Central. It
// is an HMAC under the operation key that only the vehicle and the LAG
// hold for that session, over the LAG id and the channel binding, so an
// eavesdropper of the handshake cannot compute it, two sessions of one
// vehicle give unrelated tokens, and the station learns an opaque value.
func SessionToken(t auth.StationToken) IDToken {
	return IDToken{IDToken: hex.EncodeToString(t[:]), Type: TokenType}
}

// parseToken is the auth.StationToken that tok carries, if it could be a
// SessionToken at all: type Central, 32 lower-case hex digits.
func parseToken(tok IDToken) (auth.StationToken, bool) {
	var t auth.StationToken
	if !wellFormed(tok) {
		return t, false
	}
	if _, err := hex.Decode(t[:], []byte(tok.IDToken)); err != nil {
		return t, false
	}
	return t, true
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

// TokenIndex is a LAG's index of its active sessions by station token
// (authnet.LAGServer): a read-only lookup, asked afresh at each check, so
// that a session's end or revocation voids its token at once.
type TokenIndex interface {
	HoldsStationToken(auth.StationToken) bool
	StationTokens() []auth.StationToken
}

// LAGSessions is the Authorizer of a LAG: a token is held when it is the
// SessionToken of one of the LAG's active sessions. Each check is one
// lookup in the LAG's index, whatever the number of sessions. Make it with
// NewLAGSessions.
type LAGSessions struct {
	index TokenIndex
}

// NewLAGSessions is the Authorizer of the LAG whose token index is index
// (an authnet.LAGServer).
func NewLAGSessions(index TokenIndex) *LAGSessions {
	return &LAGSessions{index: index}
}

// Holds implements Authorizer.
func (s *LAGSessions) Holds(tok IDToken) bool {
	t, ok := parseToken(tok)
	return ok && s.index.HoldsStationToken(t)
}

// HeldTokens implements TokenLister: the tokens of every active session.
func (s *LAGSessions) HeldTokens() map[string]bool {
	ts := s.index.StationTokens()
	out := make(map[string]bool, len(ts))
	for _, t := range ts {
		out[SessionToken(t).IDToken] = true
	}
	return out
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
