package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/gridveil/gridveil/auth"
	"github.com/gridveil/gridveil/auth/authnet"
	"github.com/gridveil/gridveil/ocpp"
)

// TestServeLAGOCPP: gridveil serve --role lag --ocpp opens the CSMS beside
// the LAG; a vehicle opens a session with that LAG; a station from
// --ocpp-stations boots, is refused a forged token, and with the
// vehicle's session token starts a transaction and gets vehicle 0's
// schedule of the --schedules run as its TxProfile; its meter values land
// in the LAG's metering log.
func TestServeLAGOCPP(t *testing.T) {
	data := t.TempDir()
	stations := filepath.Join(data, "stations.txt")
	const pass = "a-password-of-24-chars!!"
	if err := os.WriteFile(stations, []byte("# id password\nCP-1 "+pass+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, stopCA := startServe(t, data, filepath.Join(data, "ca", "addr"), "--role", "ca")
	defer stopCA()
	ocppAddr := filepath.Join(data, "lag-lag-1", "ocpp", "addr")
	lagOut, stopLAG := startServe(t, data, ocppAddr, "--role", "lag", "--ocpp", "127.0.0.1:0", "--ocpp-stations", stations, "--schedules", "../../ocpp/testdata/sim")
	defer stopLAG()
	// Stop only once the LAG has linked to the CA, so that stopping does
	// not cut its enrolment short.
	defer func() {
		for i := 0; i < 1000 && !strings.Contains(lagOut.String(), "synced"); i++ {
			time.Sleep(10 * time.Millisecond)
		}
	}()
	b, _ := os.ReadFile(ocppAddr)
	addr := strings.TrimSpace(string(b))

	h := http.Header{}
	h.Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte("CP-1:"+pass)))
	ws, _, err := (&websocket.Dialer{Subprotocols: []string{ocpp.Subprotocol}}).Dial("ws://"+addr+"/ocpp/CP-1", h)
	if err != nil {
		t.Fatalf("dial: %v\n%s", err, lagOut)
	}
	defer ws.Close()
	_ = ws.SetReadDeadline(time.Now().Add(30 * time.Second))
	read := func() *ocpp.Frame {
		_, msg, err := ws.ReadMessage()
		if err != nil {
			t.Fatal(err)
		}
		f, err := ocpp.DecodeFrame(msg)
		if err != nil {
			t.Fatal(err)
		}
		return f
	}
	send := func(s string) {
		if err := ws.WriteMessage(websocket.TextMessage, []byte(s)); err != nil {
			t.Fatal(err)
		}
	}
	send(`[2,"1","BootNotification",{"reason":"PowerUp","chargingStation":{"model":"m","vendorName":"v"}}]`)
	if f := read(); f.Type != ocpp.TypeCallResult {
		t.Fatalf("BootNotification: %+v", f)
	}

	// A vehicle with a session at this LAG.
	pub, err := authnet.ReadCAPublic(filepath.Join(data, "ca", "public.key"))
	if err != nil {
		t.Fatal(err)
	}
	enrolToken, err := authnet.ReadToken(filepath.Join(data, "ca", "enrol.token"))
	if err != nil {
		t.Fatal(err)
	}
	caAddr, _ := os.ReadFile(filepath.Join(data, "ca", "addr"))
	// The CSMS's address is written first; the LAG's once it has enrolled.
	var lagAddr []byte
	for i := 0; len(lagAddr) == 0; i++ {
		if i == 3000 {
			t.Fatalf("the LAG wrote no address in 30 s:\n%s", lagOut)
		}
		time.Sleep(10 * time.Millisecond)
		lagAddr, _ = os.ReadFile(filepath.Join(data, "lag-lag-1", "addr"))
	}
	vs, err := authnet.OpenStore(filepath.Join(data, "bv"))
	if err != nil {
		t.Fatal(err)
	}
	v, err := authnet.OpenVehicle(vs, "BV-OCPP", "utility-a", pub)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := v.Enrol(ctx, strings.TrimSpace(string(caAddr)), enrolToken, 2); err != nil {
		t.Fatal(err)
	}
	sess, err := v.Connect(ctx, strings.TrimSpace(string(lagAddr)), auth.SessionOptions{Role: auth.RoleLoad, ExpectLAG: "lag-1"})
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	tok := ocpp.SessionToken("lag-1", sess.S.Binding())
	status := func(id string, tok ocpp.IDToken) string {
		b, _ := json.Marshal(map[string]any{"idToken": tok})
		send(`[2,"` + id + `","Authorize",` + string(b) + `]`)
		f := read()
		var r struct{ IDTokenInfo ocpp.IDTokenInfo }
		if f.Type != ocpp.TypeCallResult || json.Unmarshal(f.Payload, &r) != nil {
			t.Fatalf("Authorize: %+v", f)
		}
		return r.IDTokenInfo.Status
	}
	if st := status("a0", ocpp.IDToken{IDToken: strings.Repeat("ab", 16), Type: ocpp.TokenType}); st != ocpp.StatusUnknown {
		t.Errorf("a forged token: %s, want Unknown", st)
	}
	// The vehicle charges once it has its permit; the LAG holds the session
	// as active once the vehicle's grant arrived, a moment later.
	for i := 0; status("a"+strconv.Itoa(i+1), tok) != ocpp.StatusAccepted; i++ {
		if i == 3000 {
			t.Fatal("the session token of a vehicle charging at this LAG is not accepted after 30 s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	send(`[2,"2","TransactionEvent",{"eventType":"Started","timestamp":"2025-01-15T19:00:00Z","triggerReason":"Authorized","seqNo":0,"transactionInfo":{"transactionId":"T1"},"evse":{"id":1},"idToken":{"idToken":"` + tok.IDToken + `","type":"Central"},"meterValue":[{"timestamp":"2025-01-15T19:00:00Z","sampledValue":[{"value":0}]}]}]`)
	var profile *ocpp.SetChargingProfileRequest
	for i := 0; i < 2; i++ {
		f := read()
		if f.Type == ocpp.TypeCall && f.Action == "SetChargingProfile" {
			profile = &ocpp.SetChargingProfileRequest{}
			if err := json.Unmarshal(f.Payload, profile); err != nil {
				t.Fatal(err)
			}
			send(`[3,"` + f.ID + `",{"status":"Accepted"}]`)
		}
	}
	if profile == nil {
		t.Fatal("no SetChargingProfile after the transaction started")
	}
	run, err := ocpp.ReadSimRun("../../ocpp/testdata/sim")
	if err != nil {
		t.Fatal(err)
	}
	want, _ := run.Schedule(0)
	if got, w := profile.ChargingProfile, ocpp.TxProfile(1, "T1", want); got.TransactionID != "T1" || len(got.ChargingSchedule[0].ChargingSchedulePeriod) != len(w.ChargingSchedule[0].ChargingSchedulePeriod) {
		t.Fatalf("profile %+v, want vehicle 0's %+v", got, w)
	} else {
		for k, p := range got.ChargingSchedule[0].ChargingSchedulePeriod {
			if p != w.ChargingSchedule[0].ChargingSchedulePeriod[k] {
				t.Errorf("period %d: %+v, want %+v", k, p, w.ChargingSchedule[0].ChargingSchedulePeriod[k])
			}
		}
	}
	if _, err := os.Stat(filepath.Join(data, "lag-lag-1", "ocpp", ocpp.MeteringFile)); err != nil {
		t.Errorf("metering log: %v", err)
	}
}

// TestServeOCPPFlags: OCPP flags without --ocpp, a bad stations file and
// a short password are refused with what to do.
func TestServeOCPPFlags(t *testing.T) {
	data := t.TempDir()
	bad := filepath.Join(data, "bad.txt")
	short := filepath.Join(data, "short.txt")
	os.WriteFile(bad, []byte("CP-1\n"), 0o600)
	os.WriteFile(short, []byte("CP-1 tooshort\n"), 0o600)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--ocpp-stations", bad}, "give --ocpp ADDR too"},
		{[]string{"--ocpp", "127.0.0.1:0"}, "--ocpp needs --ocpp-stations"},
		{[]string{"--ocpp", "127.0.0.1:0", "--ocpp-stations", bad}, "line 1: want 'STATION_ID PASSWORD'"},
		{[]string{"--ocpp", "127.0.0.1:0", "--ocpp-stations", short}, "at least 16"},
		{[]string{"--ocpp", "127.0.0.1:0", "--ocpp-stations", short, "--ocpp-tls-cert", "x"}, "at least 16"},
	} {
		cmd := newServeCmd()
		var out syncBuffer
		cmd.SetOut(&out)
		cmd.SetErr(&out)
		cmd.SetArgs(append([]string{"--role", "lag", "--data", data}, tc.args...))
		err := cmd.Execute()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: %v, want an error containing %q", tc.args, err, tc.want)
		}
	}
}
