package auth

import (
	"encoding/hex"
	"fmt"
	"time"

	"github.com/flynn/noise"

	"github.com/gridveil/gridveil/auth/wire"
)

// The CA's administration: an operator traces a session from a LAG's
// evidence, or revokes a vehicle, over the CA's own listener. The operator
// runs Noise IK to the CA's static key with an X25519 admin key whose
// public half the CA is configured with (CAConfig.AdminKey); the CA refuses
// any other static key, LAGs' certified keys included, so holding the
// admin key is what it takes to trace. The request travels only after the
// handshake, so a replayed first message gets nowhere, and it enjoys
// forward secrecy.

// frameAdmin is the first Noise IK message of an operator to the CA.
const frameAdmin = 8

// prologueAdmin keeps an admin handshake from completing as any other kind.
const prologueAdmin = "gridveil/auth/1 admin\x00"

// Admin messages.
const (
	msgAdminTrace  = 0x60
	msgAdminRevoke = 0x61
	msgAdminResult = 0x62
	msgAdminIssue  = 0x63
	msgAdminUncred = 0x64
)

// maxEvidence bounds an evidence record inside an admin request.
const maxEvidence = 64 + MaxID + 8 + 32*3 + 1 + 2 + 8 + maxCred + maxSigLen

// adminTraceMsg asks the CA to trace a LAG's evidence record.
type adminTraceMsg struct{ Evidence []byte }

func (m *adminTraceMsg) kind() uint8         { return msgAdminTrace }
func (m *adminTraceMsg) put(w *wire.Builder) { w.Bytes(m.Evidence) }
func (m *adminTraceMsg) get(r *wire.Reader)  { m.Evidence = r.Bytes(maxEvidence) }

// adminRevokeMsg asks the CA to revoke a vehicle.
type adminRevokeMsg struct{ RealID string }

func (m *adminRevokeMsg) kind() uint8         { return msgAdminRevoke }
func (m *adminRevokeMsg) put(w *wire.Builder) { w.String(m.RealID) }
func (m *adminRevokeMsg) get(r *wire.Reader)  { m.RealID = r.String(MaxID) }

// adminIssueMsg asks the CA to issue an enrolment credential for a
// vehicle or a LAG; the answer's text is the secret, in hex.
type adminIssueMsg struct {
	Kind CredentialKind
	Name string
}

func (m *adminIssueMsg) kind() uint8         { return msgAdminIssue }
func (m *adminIssueMsg) put(w *wire.Builder) { w.U8(uint8(m.Kind)).String(m.Name) }
func (m *adminIssueMsg) get(r *wire.Reader)  { m.Kind, m.Name = CredentialKind(r.U8()), r.String(MaxID) }

// adminUncredMsg asks the CA to revoke an unused enrolment credential.
type adminUncredMsg struct {
	Kind CredentialKind
	Name string
}

func (m *adminUncredMsg) kind() uint8         { return msgAdminUncred }
func (m *adminUncredMsg) put(w *wire.Builder) { w.U8(uint8(m.Kind)).String(m.Name) }
func (m *adminUncredMsg) get(r *wire.Reader) {
	m.Kind, m.Name = CredentialKind(r.U8()), r.String(MaxID)
}

// adminResultMsg is the CA's answer: Code 0 and the result, or a reject
// code and the error in words (the operator is trusted with the details).
type adminResultMsg struct {
	Code uint8
	Text string
}

func (m *adminResultMsg) kind() uint8         { return msgAdminResult }
func (m *adminResultMsg) put(w *wire.Builder) { w.U8(m.Code).String(m.Text) }
func (m *adminResultMsg) get(r *wire.Reader)  { m.Code, m.Text = r.U8(), r.String(maxAdminText) }

const maxAdminText = 1024

// clip keeps an answer within maxAdminText.
func clip(s string) string {
	if len(s) > maxAdminText {
		return s[:maxAdminText]
	}
	return s
}

// AdminError is the CA's refusal of an administration request.
type AdminError struct {
	Reason error // one of the package's errors
	Text   string
}

func (e *AdminError) Error() string { return "the CA refused: " + e.Text }

// Unwrap returns the reason, so errors.Is(err, ErrUnknown) works.
func (e *AdminError) Unwrap() error { return e.Reason }

// admin handles an operator's request on an admin connection: it answers
// and the operator closes.
func (c *CA) admin(now time.Time, id ConnID, m message) (Output, error) {
	var out Output
	var res *adminResultMsg
	fail := func(err error) *adminResultMsg {
		out.fail(id, "admin", err)
		return &adminResultMsg{Code: codeOf(err), Text: clip(err.Error())}
	}
	switch m := m.(type) {
	case *adminTraceMsg:
		e, err := ParseEvidence(m.Evidence)
		if err == nil {
			var real string
			if real, err = c.TraceEvidence(e); err == nil {
				res = &adminResultMsg{Text: clip(real)}
				out.event(id, "trace", "session %x at LAG %q (%s) traced to vehicle %q for the operator", e.Binding[:4], e.LAGID, e.Scheme, real)
			}
		}
		if err != nil {
			res = fail(err)
		}
	case *adminRevokeMsg:
		if err := checkID("identity", m.RealID); err != nil {
			res = fail(fmt.Errorf("%w: %w", ErrMalformed, err))
			break
		}
		o, err := c.RevokeBV(now, m.RealID)
		if err != nil {
			res = fail(err)
			break
		}
		out.merge(o)
		linked := 0
		for _, l := range c.lags {
			if l.link != 0 && !l.revoked {
				linked++
			}
		}
		res = &adminResultMsg{Text: fmt.Sprintf("vehicle %q revoked: revocation list v%d sent to %d linked LAG(s)", m.RealID, c.crlVersion, linked)}
	case *adminIssueMsg:
		secret, o, err := c.IssueCredential(now, m.Kind, m.Name)
		if err != nil {
			res = fail(err)
			break
		}
		out.merge(o)
		res = &adminResultMsg{Text: hex.EncodeToString(secret[:])}
	case *adminUncredMsg:
		o, err := c.RevokeCredential(now, m.Kind, m.Name)
		if err != nil {
			res = fail(err)
			break
		}
		out.merge(o)
		res = &adminResultMsg{Text: fmt.Sprintf("the enrolment credential of %s %q is revoked: it enrols no one", m.Kind, m.Name)}
	default:
		return out, fmt.Errorf("%w: message %#x on an admin connection", ErrState, m.kind())
	}
	return out, c.sendTo(&out, id, res)
}

// Admin is an operator's exchange with the CA: one request over Noise IK
// with the admin key, one answer.
type Admin struct {
	ch     *channel
	req    message
	sent   bool
	done   bool
	result string
}

// NewAdminTrace starts asking the CA to trace the session of a LAG's
// evidence record. It returns the first frame to send.
func NewAdminTrace(ca CAPublic, adminKey noise.DHKey, e *Evidence) (*Admin, []byte, error) {
	return newAdmin(ca, adminKey, &adminTraceMsg{Evidence: e.Marshal()})
}

// NewAdminRevoke starts asking the CA to revoke a vehicle by its real
// identity.
func NewAdminRevoke(ca CAPublic, adminKey noise.DHKey, realID string) (*Admin, []byte, error) {
	if err := checkID("identity", realID); err != nil {
		return nil, nil, err
	}
	return newAdmin(ca, adminKey, &adminRevokeMsg{RealID: realID})
}

// NewAdminIssue starts asking the CA to issue an enrolment credential for
// the vehicle or LAG named name. Result is then the credential's secret in
// hex, which the CA confirms only once it is on its disk.
func NewAdminIssue(ca CAPublic, adminKey noise.DHKey, kind CredentialKind, name string) (*Admin, []byte, error) {
	if kind != CredentialVehicle && kind != CredentialLAG {
		return nil, nil, fmt.Errorf("credential kind %d: vehicle or lag", kind)
	}
	if err := checkID("name", name); err != nil {
		return nil, nil, err
	}
	return newAdmin(ca, adminKey, &adminIssueMsg{Kind: kind, Name: name})
}

// NewAdminRevokeCredential starts asking the CA to revoke the unused
// enrolment credential issued for a vehicle or LAG.
func NewAdminRevokeCredential(ca CAPublic, adminKey noise.DHKey, kind CredentialKind, name string) (*Admin, []byte, error) {
	if kind != CredentialVehicle && kind != CredentialLAG {
		return nil, nil, fmt.Errorf("credential kind %d: vehicle or lag", kind)
	}
	if err := checkID("name", name); err != nil {
		return nil, nil, err
	}
	return newAdmin(ca, adminKey, &adminUncredMsg{Kind: kind, Name: name})
}

func newAdmin(ca CAPublic, adminKey noise.DHKey, req message) (*Admin, []byte, error) {
	static, err := newStaticKey(adminKey)
	if err != nil {
		return nil, nil, err
	}
	ch, err := newChannel(noise.HandshakeIK, true, []byte(prologueAdmin), static, ca.NoiseKey[:])
	if err != nil {
		return nil, nil, err
	}
	msg, err := ch.write(nil)
	if err != nil {
		return nil, nil, err
	}
	return &Admin{ch: ch, req: req}, append([]byte{frameAdmin}, msg...), nil
}

// Done reports whether the CA answered and accepted the request.
func (a *Admin) Done() bool { return a.done }

// Result is the CA's answer: the traced identity, or what the revocation
// did.
func (a *Admin) Result() string { return a.result }

// Receive consumes a frame from the CA and returns the next frame to send
// (nil when there is none). A refusal is an *AdminError (or, before the
// channel exists, a *RejectedError).
func (a *Admin) Receive(frame []byte) ([]byte, error) {
	if len(frame) == 0 {
		return nil, fmt.Errorf("%w: empty frame", ErrMalformed)
	}
	switch {
	case frame[0] == frameReject && len(frame) == 2:
		return nil, &RejectedError{By: "ca", Reason: errOf(frame[1])}
	case frame[0] == frameHS2 && !a.sent:
		if _, err := a.ch.read(frame[1:]); err != nil {
			return nil, err
		}
		a.sent = true
		return a.ch.seal(encode(a.req))
	case frame[0] == frameData && a.sent && !a.done:
		pt, err := a.ch.open(frame[1:])
		if err != nil {
			return nil, err
		}
		m, err := parseAny(pt)
		if err != nil {
			return nil, err
		}
		switch m := m.(type) {
		case *rejectMsg:
			return nil, &RejectedError{By: "ca", Reason: errOf(m.Code)}
		case *adminResultMsg:
			if m.Code != 0 {
				return nil, &AdminError{Reason: errOf(m.Code), Text: m.Text}
			}
			a.done, a.result = true, m.Text
			return nil, nil
		}
		return nil, fmt.Errorf("%w: message %#x from the CA", ErrState, m.kind())
	}
	return nil, fmt.Errorf("%w: admin frame type %d", ErrState, frame[0])
}
