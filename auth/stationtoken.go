package auth

import "fmt"

// StationToken is the token a vehicle shows a charging station for one
// admitted session with a LAG (package ocpp carries it as the OCPP
// idToken, 32 hex digits of type Central). It is
//
//	HMAC-SHA-256(opKey, "gridveil/op/station-token/v1" 0x00 || len||LAG id || len||channel binding)[0:16]
//
// with the lengths 4-byte big-endian (the framing of every operation MAC,
// seal.go). opKey is the 32-byte operation key the vehicle drew from
// crypto/rand for this session and sent the LAG inside the Noise channel
// (authReq or resumeReq): only the vehicle and that LAG hold it. Hence:
//
//   - an eavesdropper who recorded the whole handshake (or a station that
//     relayed it) knows the binding but not opKey, and cannot compute the
//     token, so it cannot present it first and take the vehicle's
//     schedule;
//   - the vehicle and the LAG derive the same token with no message more;
//   - two sessions of one vehicle have fresh opKeys and bindings, so their
//     tokens are unrelated: a station (and the CSMS) cannot link them;
//   - the LAG id in the MAC makes a token meaningless at any other LAG;
//   - the station learns an opaque 128-bit value and nothing else: no
//     identity, credential or key.
//
// The CA never sees opKey and cannot compute a token; it does not need to.
type StationToken [16]byte

// stationToken derives a session's StationToken (see the type).
func stationToken(opKey [32]byte, lagID string, binding [32]byte) StationToken {
	m := mac(opKey, "station-token", []byte(lagID), binding[:])
	return StationToken(m[:16])
}

// StationToken is this session's token for charging stations (see the
// type). It exists once the vehicle is admitted (charging or later) and
// until the session closes.
func (s *BVSession) StationToken() (StationToken, error) {
	if s.state < BVCharging || s.state == BVClosed || s.ch == nil {
		return StationToken{}, fmt.Errorf("%w: a station token needs an admitted session (state %s); wait until the session is charging", ErrState, s.state)
	}
	return stationToken(s.opKey, s.cert.LAGID, s.ch.binding), nil
}

// setOpKey records the operation key a vehicle sent for session s and
// indexes the session under its station token, so that a CSMS's check of
// a token is one map lookup (HoldsStationToken) however many sessions the
// LAG holds.
func (l *LAG) setOpKey(s *lagSession, k [32]byte) {
	l.unindexToken(s)
	s.opKey = k
	s.token = stationToken(k, l.cfg.Cert.LAGID, s.ch.binding)
	s.hasToken = true
	l.byToken[s.token] = s.id
}

// unindexToken removes s from the token index (when it closes).
func (l *LAG) unindexToken(s *lagSession) {
	if s.hasToken && l.byToken[s.token] == s.id {
		delete(l.byToken, s.token)
	}
	s.hasToken = false
}

// HoldsStationToken tells whether t is the station token of a session
// this LAG holds as active (admitted, granted, not ended or revoked). It
// is one map lookup; the map's hash is seeded at random per process, so
// the time it takes tells a caller nothing about the tokens held beyond
// the answer.
func (l *LAG) HoldsStationToken(t StationToken) bool {
	id, ok := l.byToken[t]
	if !ok {
		return false
	}
	s := l.sessions[id]
	return s != nil && s.hasToken && s.token == t && s.state == lsActive
}

// StationTokens lists the station tokens of every active session, in no
// particular order (a CSMS asks it once to find the transactions whose
// session ended).
func (l *LAG) StationTokens() []StationToken {
	out := make([]StationToken, 0, len(l.byToken))
	for t, id := range l.byToken {
		if s := l.sessions[id]; s != nil && s.state == lsActive {
			out = append(out, t)
		}
	}
	return out
}
