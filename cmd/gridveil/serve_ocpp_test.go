package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"net"
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
	// The vehicle enrols with the credential the operator issued for it.
	if out, err := runCA("issue", "vehicle", "BV-OCPP", "--data", data); err != nil {
		t.Fatalf("issuing BV-OCPP's credential: %v\n%s", err, out)
	}
	enrolToken, err := authnet.ReadToken(filepath.Join(data, "credentials", authnet.CredentialFile(auth.CredentialVehicle, "BV-OCPP")))
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
	st, err := sess.S.StationToken()
	if err != nil {
		t.Fatal(err)
	}
	tok := ocpp.SessionToken(st)
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
		{[]string{"--ocpp", "127.0.0.1:0", "--ocpp-stations", short, "--ocpp-tls-client-ca", "ca.pem"}, "needs the endpoint's own --ocpp-tls-cert"},
		{[]string{"--ocpp", "127.0.0.1:0", "--ocpp-stations", short, "--ocpp-ping", "-1s"}, "--ocpp-ping -1s"},
		{[]string{"--ocpp-tls-client-ca", "ca.pem"}, "give --ocpp ADDR too"},
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

// TestServeOCPPProfile3: --ocpp-tls-client-ca turns on security profile 3.
// A station listed by id alone connects over TLS with a client certificate
// for its id from that CA, and gets its BootNotification answered; the
// same station without a certificate is refused in the TLS handshake.
func TestServeOCPPProfile3(t *testing.T) {
	data := t.TempDir()
	write := func(name string, b []byte) string {
		p := filepath.Join(data, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "CSO root"}, NotBefore: time.Now().Add(-time.Hour),
		NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	leaf := func(cn string, usage x509.ExtKeyUsage) (certPEM, keyPEM []byte) {
		key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn}, NotBefore: time.Now().Add(-time.Hour),
			NotAfter: time.Now().Add(time.Hour), KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage},
			IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		kder, _ := x509.MarshalECPrivateKey(key)
		return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})
	}
	srvCert, srvKey := leaf("csms", x509.ExtKeyUsageServerAuth)
	cpCert, cpKey := leaf("CP-1", x509.ExtKeyUsageClientAuth)
	args := []string{"--role", "lag", "--ocpp", "127.0.0.1:0", "--ocpp-stations", write("stations.txt", []byte("CP-1\n")),
		"--ocpp-tls-cert", write("srv.pem", srvCert), "--ocpp-tls-key", write("srv.key", srvKey),
		"--ocpp-tls-client-ca", write("ca.pem", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}))}
	_, stopCA := startServe(t, data, filepath.Join(data, "ca", "addr"), "--role", "ca")
	defer stopCA()
	ocppAddr := filepath.Join(data, "lag-lag-1", "ocpp", "addr")
	lagOut, stopLAG := startServe(t, data, ocppAddr, args...)
	defer stopLAG()
	defer func() { // stop once the LAG has enrolled, as TestServeLAGOCPP does
		for i := 0; i < 1000 && !strings.Contains(lagOut.String(), "synced"); i++ {
			time.Sleep(10 * time.Millisecond)
		}
	}()
	for i := 0; !strings.Contains(lagOut.String(), "security profile 3"); i++ { // printed just after the address is written
		if i == 3000 {
			t.Fatalf("the LAG does not say it serves profile 3:\n%s", lagOut)
		}
		time.Sleep(10 * time.Millisecond)
	}
	b, _ := os.ReadFile(ocppAddr)
	url := "wss://" + strings.TrimSpace(string(b)) + "/ocpp/CP-1"
	roots := x509.NewCertPool()
	roots.AddCert(caCert)
	pair, err := tls.X509KeyPair(cpCert, cpKey)
	if err != nil {
		t.Fatal(err)
	}
	d := websocket.Dialer{Subprotocols: []string{ocpp.Subprotocol}, HandshakeTimeout: 20 * time.Second,
		TLSClientConfig: &tls.Config{RootCAs: roots, Certificates: []tls.Certificate{pair}}}
	ws, _, err := d.Dial(url, nil)
	if err != nil {
		t.Fatalf("CP-1 with its client certificate: %v\n%s", err, lagOut)
	}
	defer ws.Close()
	_ = ws.SetReadDeadline(time.Now().Add(30 * time.Second))
	if err := ws.WriteMessage(websocket.TextMessage, []byte(`[2,"1","BootNotification",{"reason":"PowerUp","chargingStation":{"model":"m","vendorName":"v"}}]`)); err != nil {
		t.Fatal(err)
	}
	if _, msg, err := ws.ReadMessage(); err != nil || !strings.Contains(string(msg), `"Accepted"`) {
		t.Fatalf("BootNotification over profile 3: %s %v", msg, err)
	}
	d.TLSClientConfig = &tls.Config{RootCAs: roots}
	if ws, resp, err := d.Dial(url, nil); err == nil {
		ws.Close()
		t.Error("CP-1 without a client certificate connected")
	} else if resp != nil {
		t.Errorf("without a client certificate: HTTP %d, want the TLS handshake refused", resp.StatusCode)
	}
}
