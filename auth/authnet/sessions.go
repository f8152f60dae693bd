package authnet

import "github.com/gridveil/gridveil/auth"

// ActiveSessions lists the sessions the LAG has admitted and still holds
// (the core's view, auth.LAGSessionView: no identity in it). It only
// reads: the LAG's CSMS (package ocpp) asks it whether an idToken a
// charging station presents belongs to one of them, so that a session's
// end or revocation voids its token at once.
func (s *LAGServer) ActiveSessions() []auth.LAGSessionView {
	s.mu.Lock()
	all := s.lag.Sessions()
	s.mu.Unlock()
	out := all[:0]
	for _, v := range all {
		if v.Active {
			out = append(out, v)
		}
	}
	return out
}

// HoldsStationToken tells whether t is the station token (auth.StationToken)
// of a session this LAG holds as active: one map lookup under the LAG's
// lock, so that a CSMS's Authorize costs the same at one session and at
// thousands.
func (s *LAGServer) HoldsStationToken(t auth.StationToken) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lag.HoldsStationToken(t)
}

// StationTokens lists the station tokens of the LAG's active sessions.
func (s *LAGServer) StationTokens() []auth.StationToken {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lag.StationTokens()
}
