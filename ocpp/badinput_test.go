package ocpp

import (
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// call sends raw and returns the decoded answer.
func roundTrip(t *testing.T, ws *websocket.Conn, raw string) *Frame {
	t.Helper()
	if err := ws.WriteMessage(websocket.TextMessage, []byte(raw)); err != nil {
		t.Fatal(err)
	}
	_ = ws.SetReadDeadline(time.Now().Add(20 * time.Second))
	_, data, err := ws.ReadMessage()
	if err != nil {
		t.Fatalf("after %s: %v", raw, err)
	}
	f, err := DecodeFrame(data)
	if err != nil {
		t.Fatalf("the CSMS sent a bad frame %s: %v", data, err)
	}
	return f
}

func meteringLines(t *testing.T, dir string) int {
	data, err := os.ReadFile(filepath.Join(dir, MeteringFile))
	if err != nil {
		t.Fatal(err)
	}
	return strings.Count(string(data), "\n")
}

const started = `{"eventType":"Started","timestamp":"2025-01-15T19:00:00Z","triggerReason":"Authorized","seqNo":0,"transactionInfo":{"transactionId":"T1"},"evse":{"id":1},"meterValue":[{"timestamp":"2025-01-15T19:00:00Z","sampledValue":[{"value":100}]}]}`

// TestBadInput: malformed frames, unknown actions, schema-invalid payloads
// and duplicate ids each get their CALLERROR, store nothing, and leave the
// connection, and the other stations, served.
func TestBadInput(t *testing.T) {
	dir := t.TempDir()
	w := startAuthWorld(t, "lag-1")
	_, tok := w.connect(t, w.vehicles(t, "bad", 1)[0], "lag-1")
	_, addr := startCSMS(t, Options{Stations: map[string]string{"A": "pa", "B": "pb"}, Authorizer: w.authorizer("lag-1"), Dir: dir})
	a, _, err := dial(addr, "A", "pa", Subprotocol)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, _, err := dial(addr, "B", "pb", Subprotocol)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()

	cases := []struct {
		name, frame, id, code string
	}{
		{"not JSON", `[2, "x1", "Heartbeat", {`, "-1", ErrRPCFrameworkError},
		{"not an array", `{"id": 1}`, "-1", ErrRPCFrameworkError},
		{"no id", `[2]`, "-1", ErrRPCFrameworkError},
		{"id too long", `[2, "` + strings.Repeat("x", 37) + `", "Heartbeat", {}]`, "-1", ErrRPCFrameworkError},
		{"unknown message type", `[7, "x2", "Heartbeat", {}]`, "x2", ErrMessageTypeNotSupported},
		{"payload not an object", `[2, "x3", "Heartbeat", []]`, "x3", ErrFormatViolation},
		{"unknown action", `[2, "x4", "FlyToTheMoon", {}]`, "x4", ErrNotImplemented},
		{"action the CSMS sends, not receives", `[2, "x5", "SetChargingProfile", {}]`, "x5", ErrNotImplemented},
		{"missing required field", `[2, "x6", "Authorize", {"idToken": {"idToken": "s"}}]`, "x6", ErrOccurrenceConstraintViolation},
		{"wrong type", `[2, "x7", "Authorize", {"idToken": {"idToken": 5, "type": "Central"}}]`, "x7", ErrTypeConstraintViolation},
		{"unknown field", `[2, "x8", "Heartbeat", {"extra": 1}]`, "x8", ErrPropertyConstraintViolation},
		{"enum value", `[2, "x9", "Authorize", {"idToken": {"idToken": "s", "type": "Passport"}}]`, "x9", ErrFormatViolation},
		{"string too long", `[2, "x10", "Authorize", {"idToken": {"idToken": "` + strings.Repeat("s", 37) + `", "type": "Central"}}]`, "x10", ErrFormatViolation},
		{"bad timestamp", `[2, "x11", "TransactionEvent", ` + strings.Replace(started, `"timestamp":"2025-01-15T19:00:00Z","trigger`, `"timestamp":"tonight","trigger`, 1) + `]`, "x11", ErrFormatViolation},
		{"meter in a unit not energy", `[2, "x12", "TransactionEvent", ` + strings.Replace(started, `{"value":100}`, `{"value":100,"unitOfMeasure":{"unit":"A"}}`, 1) + `]`, "x12", ErrPropertyConstraintViolation},
		{"negative register", `[2, "x13", "TransactionEvent", ` + strings.Replace(started, `{"value":100}`, `{"value":-100}`, 1) + `]`, "x13", ErrPropertyConstraintViolation},
	}
	for i, tc := range cases {
		f := roundTrip(t, a, tc.frame)
		if f.Type != TypeCallError || f.ID != tc.id || f.ErrorCode != tc.code || f.ErrorDescription == "" {
			t.Errorf("%s: got type %d id %q code %q (%s); want CALLERROR id %q code %q", tc.name, f.Type, f.ID, f.ErrorCode, f.ErrorDescription, tc.id, tc.code)
		}
		if n := meteringLines(t, dir); n != 0 {
			t.Fatalf("%s: %d metering record(s) stored", tc.name, n)
		}
		// The connection survives, and so does the other station's.
		if f := roundTrip(t, b, `[2, "b-`+strconv.Itoa(i)+`", "Heartbeat", {}]`); f.Type != TypeCallResult {
			t.Fatalf("%s: station B's heartbeat got %+v", tc.name, f)
		}
	}

	// A valid event without an idToken is answered and stored nowhere: no
	// session authorised it.
	if f := roundTrip(t, a, `[2, "ev0", "TransactionEvent", `+started+`]`); f.Type != TypeCallResult {
		t.Fatalf("TransactionEvent without idToken: %+v", f)
	}
	if n := meteringLines(t, dir); n != 0 {
		t.Fatalf("%d metering records after an event without idToken, want 0", n)
	}
	// With the token of the vehicle's session it is stored once; the same
	// id again is refused, and a retransmission under a new id with the
	// same seqNo is not stored twice.
	started := strings.Replace(started, `"evse":{"id":1}`, `"evse":{"id":1},"idToken":{"idToken":"`+tok.IDToken+`","type":"Central"}`, 1)
	if f := roundTrip(t, a, `[2, "ev1", "TransactionEvent", `+started+`]`); f.Type != TypeCallResult {
		t.Fatalf("TransactionEvent: %+v", f)
	}
	if n := meteringLines(t, dir); n != 1 {
		t.Fatalf("%d metering records after one event, want 1", n)
	}
	f := roundTrip(t, a, `[2, "ev1", "TransactionEvent", `+strings.Replace(started, `"seqNo":0`, `"seqNo":1`, 1)+`]`)
	if f.Type != TypeCallError || f.ErrorCode != ErrRPCFrameworkError || !strings.Contains(f.ErrorDescription, "already used") {
		t.Errorf("duplicate message id: got %+v, want a RpcFrameworkError naming the reused id", f)
	}
	if f := roundTrip(t, a, `[2, "ev2", "TransactionEvent", `+started+`]`); f.Type != TypeCallResult {
		t.Fatalf("retransmitted TransactionEvent: %+v", f)
	}
	if n := meteringLines(t, dir); n != 1 {
		t.Errorf("%d metering records after a refused duplicate id and a retransmission, want 1", n)
	}
	// A binary message is refused too.
	if err := a.WriteMessage(websocket.BinaryMessage, []byte(`[2,"bin","Heartbeat",{}]`)); err != nil {
		t.Fatal(err)
	}
	_, data, err := a.ReadMessage()
	if err != nil {
		t.Fatal(err)
	}
	if f, _ := DecodeFrame(data); f == nil || f.Type != TypeCallError || f.ErrorCode != ErrRPCFrameworkError {
		t.Errorf("binary message: got %s, want a RpcFrameworkError", data)
	}
	if f := roundTrip(t, a, `[2, "hb-last", "Heartbeat", {}]`); f.Type != TypeCallResult {
		t.Errorf("after the bad input, station A's heartbeat got %+v", f)
	}
}

// TestRefusedAtUpgrade: unknown stations, wrong passwords, no basic auth
// and a username that is not the station are refused before the upgrade
// with 401; a client that does not offer ocpp2.0.1 is closed with a
// protocol error. None of them stops the CSMS serving a good station.
func TestRefusedAtUpgrade(t *testing.T) {
	_, addr := startCSMS(t, Options{Stations: map[string]string{"CP-1": "right"}})
	for _, tc := range []struct{ name, id, password string }{
		{"unknown station", "CP-9", "right"},
		{"wrong password", "CP-1", "wrong"},
		{"no credentials", "CP-1", ""},
	} {
		ws, resp, err := dial(addr, tc.id, tc.password, Subprotocol)
		if err == nil {
			ws.Close()
			t.Errorf("%s: connected", tc.name)
			continue
		}
		if resp == nil || resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("%s: %v, response %v; want 401", tc.name, err, resp)
		}
	}
	// Basic auth as another identity than the URL's.
	h := http.Header{}
	h.Set("Authorization", "Basic Q1AtOTpyaWdodA==") // CP-9:right
	d := websocket.Dialer{Subprotocols: []string{Subprotocol}}
	if ws, resp, err := d.Dial("ws://"+addr+PathPrefix+"CP-1", h); err == nil {
		ws.Close()
		t.Error("a station authenticated as another identity connected")
	} else if resp == nil || resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("another identity: %v; want 401", err)
	}

	ws, _, err := dial(addr, "CP-1", "right", "ocpp1.6")
	if err != nil {
		t.Fatal(err)
	}
	if ws.Subprotocol() != "" {
		t.Errorf("negotiated %q with a client offering only ocpp1.6", ws.Subprotocol())
	}
	_ = ws.SetReadDeadline(time.Now().Add(20 * time.Second))
	_, _, err = ws.ReadMessage()
	var ce *websocket.CloseError
	if !errors.As(err, &ce) || ce.Code != websocket.CloseProtocolError || !strings.Contains(ce.Text, "ocpp2.0.1") {
		t.Errorf("wrong subprotocol: read %v; want a close with code 1002 naming ocpp2.0.1", err)
	}
	ws.Close()

	good, _, err := dial(addr, "CP-1", "right", "ocpp1.6", Subprotocol)
	if err != nil {
		t.Fatal(err)
	}
	defer good.Close()
	if good.Subprotocol() != Subprotocol {
		t.Fatalf("negotiated %q", good.Subprotocol())
	}
	if f := roundTrip(t, good, `[2, "b1", "BootNotification", {"reason":"PowerUp","chargingStation":{"model":"m","vendorName":"v"}}]`); f.Type != TypeCallResult {
		t.Fatalf("BootNotification: %+v", f)
	} else {
		var r struct{ Status string }
		_ = json.Unmarshal(f.Payload, &r)
		if r.Status != "Accepted" {
			t.Errorf("BootNotification status %q", r.Status)
		}
	}
}

// FuzzDecodeFrame: the decoder never panics; what it accepts re-encodes to
// a frame it decodes to the same thing; what it refuses carries an RPC
// error with a code and a readable id.
func FuzzDecodeFrame(f *testing.F) {
	for _, s := range []string{`[2,"1","Heartbeat",{}]`, `[3,"1",{"currentTime":"2025-01-01T00:00:00Z"}]`, `[4,"1","NotImplemented","no",{}]`,
		`[2,"1","Heartbeat",[]]`, `[9,"1"]`, `[]`, `{}`, `[2,1,"x",{}]`, `[2,"1","Heartbeat",{}] x`, ``, `[2,"` + strings.Repeat("a", 40) + `","A",{}]`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		fr, err := DecodeFrame(data)
		if err != nil {
			var rpc *RPCError
			if !errors.Is(err, ErrFrame) || !errors.As(err, &rpc) || rpc.Code == "" || rpc.ID == "" || len(rpc.ID) > MaxIDLength {
				t.Fatalf("error %v without a usable RPC error", err)
			}
			if out := EncodeCallError(rpc); out == nil {
				t.Fatal("no CALLERROR encoded")
			} else if back, err := DecodeFrame(out); err != nil || back.Type != TypeCallError {
				t.Fatalf("our own CALLERROR %s does not decode: %v", out, err)
			}
			return
		}
		var out []byte
		switch fr.Type {
		case TypeCall:
			out, err = EncodeCall(fr.ID, fr.Action, fr.Payload)
		case TypeCallResult:
			out, err = EncodeCallResult(fr.ID, fr.Payload)
		case TypeCallError:
			out = EncodeCallError(&RPCError{ID: fr.ID, Code: fr.ErrorCode, Description: fr.ErrorDescription})
		default:
			t.Fatalf("accepted message type %d", fr.Type)
		}
		if err != nil {
			t.Fatalf("re-encoding %+v: %v", fr, err)
		}
		back, err := DecodeFrame(out)
		if err != nil || back.Type != fr.Type || back.ID != fr.ID || back.Action != fr.Action || back.ErrorCode != fr.ErrorCode {
			t.Fatalf("%s re-encoded as %s decodes to %+v, %v", data, out, back, err)
		}
	})
}
