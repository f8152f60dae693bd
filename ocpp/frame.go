package ocpp

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// Message types of OCPP-J (OCPP 2.0.1 part 4, section 4.2).
const (
	TypeCall       = 2
	TypeCallResult = 3
	TypeCallError  = 4
)

// Error codes of CALLERROR frames (OCPP 2.0.1 part 4, section 4.3).
const (
	ErrFormatViolation               = "FormatViolation"
	ErrGenericError                  = "GenericError"
	ErrInternalError                 = "InternalError"
	ErrMessageTypeNotSupported       = "MessageTypeNotSupported"
	ErrNotImplemented                = "NotImplemented"
	ErrNotSupported                  = "NotSupported"
	ErrOccurrenceConstraintViolation = "OccurrenceConstraintViolation"
	ErrPropertyConstraintViolation   = "PropertyConstraintViolation"
	ErrProtocolError                 = "ProtocolError"
	ErrRPCFrameworkError             = "RpcFrameworkError"
	ErrSecurityError                 = "SecurityError"
	ErrTypeConstraintViolation       = "TypeConstraintViolation"
)

// MaxIDLength is the longest message id OCPP-J allows.
const MaxIDLength = 36

// Frame is one decoded OCPP-J message.
type Frame struct {
	Type    int
	ID      string
	Action  string          // CALL only
	Payload json.RawMessage // CALL and CALLRESULT: a JSON object

	// CALLERROR only.
	ErrorCode        string
	ErrorDescription string
	ErrorDetails     json.RawMessage
}

// RPCError is an error the other party is told about in a CALLERROR frame,
// or one it told us about.
type RPCError struct {
	ID          string // the message id it answers; "-1" if the id could not be read
	Code        string
	Description string
}

func (e *RPCError) Error() string {
	return fmt.Sprintf("OCPP %s: %s", e.Code, e.Description)
}

// ErrFrame marks a frame that could not be decoded; errors.As gives the
// *RPCError to answer with.
var ErrFrame = errors.New("ocpp: bad frame")

// frameError is a decoding failure: both ErrFrame and the RPCError to send.
type frameError struct{ rpc *RPCError }

func (e *frameError) Error() string        { return "ocpp: bad frame: " + e.rpc.Description }
func (e *frameError) Is(target error) bool { return target == ErrFrame }
func (e *frameError) As(target any) bool {
	if p, ok := target.(**RPCError); ok {
		*p = e.rpc
		return true
	}
	return false
}

func badFrame(id, code, format string, args ...any) error {
	return &frameError{&RPCError{ID: id, Code: code, Description: fmt.Sprintf(format, args...)}}
}

// DecodeFrame decodes one OCPP-J frame: a JSON array [2, id, action,
// payload], [3, id, payload] or [4, id, code, description, details]. A
// frame that cannot be decoded gives an error wrapping ErrFrame from which
// errors.As extracts the *RPCError to answer with: the message id when it
// could be read, "-1" otherwise (OCPP 2.0.1 part 4, section 4.2.3). With
// such an error the returned frame is nil, or holds the type and id when
// they could be read, so that a bad CALLRESULT is not answered.
func DecodeFrame(data []byte) (*Frame, error) {
	var parts []json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&parts); err != nil {
		return nil, badFrame("-1", ErrRPCFrameworkError, "a frame must be a JSON array [type, id, ...]: %v", err)
	}
	if dec.More() {
		return nil, badFrame("-1", ErrRPCFrameworkError, "trailing data after the frame's JSON array")
	}
	if len(parts) < 2 {
		return nil, badFrame("-1", ErrRPCFrameworkError, "a frame has at least a message type and a message id, got %d element(s)", len(parts))
	}
	var id string
	if err := json.Unmarshal(parts[1], &id); err != nil || id == "" || len(id) > MaxIDLength {
		return nil, badFrame("-1", ErrRPCFrameworkError, "the message id must be a string of 1 to %d characters, got %.40s", MaxIDLength, parts[1])
	}
	var typ int
	if err := json.Unmarshal(parts[0], &typ); err != nil {
		return &Frame{ID: id}, badFrame(id, ErrRPCFrameworkError, "the message type must be the integer 2 (CALL), 3 (CALLRESULT) or 4 (CALLERROR), got %.20s", parts[0])
	}
	f := &Frame{Type: typ, ID: id}
	bad := func(code, format string, args ...any) (*Frame, error) {
		return &Frame{Type: typ, ID: id}, badFrame(id, code, format, args...)
	}
	switch typ {
	case TypeCall:
		if len(parts) != 4 {
			return bad(ErrRPCFrameworkError, "a CALL is [2, id, action, payload], got %d elements", len(parts))
		}
		if err := json.Unmarshal(parts[2], &f.Action); err != nil || f.Action == "" {
			return bad(ErrRPCFrameworkError, "a CALL's action must be a non-empty string, got %.40s", parts[2])
		}
		if !isObject(parts[3]) {
			return bad(ErrFormatViolation, "a CALL's payload must be a JSON object, got %.40s", parts[3])
		}
		f.Payload = parts[3]
	case TypeCallResult:
		if len(parts) != 3 {
			return bad(ErrRPCFrameworkError, "a CALLRESULT is [3, id, payload], got %d elements", len(parts))
		}
		if !isObject(parts[2]) {
			return bad(ErrFormatViolation, "a CALLRESULT's payload must be a JSON object, got %.40s", parts[2])
		}
		f.Payload = parts[2]
	case TypeCallError:
		if len(parts) != 5 {
			return bad(ErrRPCFrameworkError, "a CALLERROR is [4, id, code, description, details], got %d elements", len(parts))
		}
		if err := json.Unmarshal(parts[2], &f.ErrorCode); err != nil || f.ErrorCode == "" {
			return bad(ErrRPCFrameworkError, "a CALLERROR's code must be a non-empty string, got %.40s", parts[2])
		}
		if err := json.Unmarshal(parts[3], &f.ErrorDescription); err != nil {
			return bad(ErrRPCFrameworkError, "a CALLERROR's description must be a string, got %.40s", parts[3])
		}
		if !isObject(parts[4]) {
			return bad(ErrRPCFrameworkError, "a CALLERROR's details must be a JSON object, got %.40s", parts[4])
		}
		f.ErrorDetails = parts[4]
	default:
		return bad(ErrMessageTypeNotSupported, "message type %d is not one of 2 (CALL), 3 (CALLRESULT), 4 (CALLERROR)", typ)
	}
	return f, nil
}

func isObject(raw json.RawMessage) bool {
	raw = bytes.TrimSpace(raw)
	return len(raw) > 0 && raw[0] == '{'
}

// EncodeCall encodes a CALL frame.
func EncodeCall(id, action string, payload any) ([]byte, error) {
	return json.Marshal([]any{TypeCall, id, action, payload})
}

// EncodeCallResult encodes a CALLRESULT frame.
func EncodeCallResult(id string, payload any) ([]byte, error) {
	return json.Marshal([]any{TypeCallResult, id, payload})
}

// EncodeCallError encodes a CALLERROR frame for e. OCPP-J limits the
// description to 255 characters.
func EncodeCallError(e *RPCError) []byte {
	desc := e.Description
	if len(desc) > 255 {
		desc = strings.ToValidUTF8(desc[:252], "") + "..."
	}
	b, _ := json.Marshal([]any{TypeCallError, e.ID, e.Code, desc, struct{}{}})
	return b
}
