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
