package ocpp

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// syncLog is a log buffer safe for the CSMS's goroutines.
type syncLog struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *syncLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *syncLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// TestPings: the CSMS pings every station; a station that answers (a
// gorilla client reading its connection, so answering pings, but sending
// no OCPP message at all) stays connected through many pings; one that
// answers nothing (a client that never reads: its pongs never go out) is
// closed and logged as dead, and the live one is still served.
func TestPings(t *testing.T) {
	log := &syncLog{}
	c, addr := startCSMS(t, Options{Stations: map[string]string{"live": "pl", "dead": "pd"}, PingInterval: 300 * time.Millisecond,
		Log: slog.New(slog.NewTextHandler(log, nil))})
	live, _, err := dial(addr, "live", "pl", Subprotocol)
	if err != nil {
		t.Fatal(err)
	}
	defer live.Close()
	var pings atomic.Int32
	live.SetPingHandler(func(data string) error {
		pings.Add(1)
		return live.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(10*time.Second))
	})
	frames := make(chan []byte, 16)
	go func() {
		for {
			_, msg, err := live.ReadMessage()
			if err != nil {
				close(frames)
				return
			}
			frames <- msg
		}
	}()
	dead, _, err := dial(addr, "dead", "pd", Subprotocol)
	if err != nil {
		t.Fatal(err)
	}
	defer dead.Close()

	// Wait for the CSMS to log the dead station's disconnection (it
	// registers a connection just after the upgrade the client has seen,
	// so Connected alone could be read before it ever was true).
	for i := 0; !strings.Contains(log.String(), `msg="ocpp: station disconnected" station=dead`); i++ {
		if i == 6000 {
			t.Fatalf("a station that answers no ping is still connected after 60 s; log:\n%s", log)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if c.Connected("dead") {
		t.Error("the dead station is disconnected in the log but still listed as connected")
	}
	if !strings.Contains(log.String(), `station dead: no pong or frame for two ping intervals; closing its connection" station=dead`) {
		t.Errorf("the dead station's close was not logged:\n%s", log)
	}
	for i := 0; pings.Load() < 4; i++ {
		if i == 6000 {
			t.Fatalf("the live station got %d pings in 60 s", pings.Load())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if !c.Connected("live") || strings.Count(log.String(), "station dead") != 1 {
		t.Fatalf("the live station, which answered %d pings, was closed; log:\n%s", pings.Load(), log)
	}
	if err := live.WriteMessage(websocket.TextMessage, []byte(`[2,"h1","Heartbeat",{}]`)); err != nil {
		t.Fatal(err)
	}
	select {
	case msg, ok := <-frames:
		if f, err := DecodeFrame(msg); !ok || err != nil || f.Type != TypeCallResult {
			t.Errorf("the live station's heartbeat got %s (%v)", msg, err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("no answer to the live station's heartbeat")
	}
	// The dead station's socket was closed by the CSMS: reading it now
	// (its pings first) ends in a close or an error.
	_ = dead.SetReadDeadline(time.Now().Add(30 * time.Second))
	for {
		if _, _, err := dead.ReadMessage(); err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				t.Fatal("the dead station's connection is still open")
			}
			break
		}
	}
}

// pki is a certificate authority for the TLS tests.
type pki struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

func newPKI(t *testing.T, name string) *pki {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name, Organization: []string{"gridveil test"}},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return &pki{cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// issue signs a leaf certificate: a server's for 127.0.0.1, or a
// station's client certificate with Subject CN cn.
func (p *pki) issue(t *testing.T, cn string, server bool) (tls.Certificate, []byte, []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{SerialNumber: serial, Subject: pkix.Name{CommonName: cn, Organization: []string{"gridveil test CSO"}},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour), KeyUsage: x509.KeyUsageDigitalSignature}
	if server {
		tmpl.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1)}
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	} else {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.cert, &key.PublicKey, p.key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	return pair, certPEM, keyPEM
}

// startProfile3 serves a CSMS over TLS that requires client certificates
// issued by ca (security profile 3).
func startProfile3(t *testing.T, ca *pki, opts Options) (*CSMS, string) {
	t.Helper()
	srvCert, _, _ := ca.issue(t, "csms", true)
	pool := x509.NewCertPool()
	pool.AddCert(ca.cert)
	opts.ClientCerts = true
	if opts.Dir == "" {
		opts.Dir = t.TempDir()
	}
	c, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	conf := &tls.Config{Certificates: []tls.Certificate{srvCert}, ClientCAs: pool, ClientAuth: tls.RequireAndVerifyClientCert, MinVersion: tls.VersionTLS12}
	go func() { done <- c.Serve(ctx, ln, conf) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return c, ln.Addr().String()
}

// TestClientCertificates: security profile 3 with Go's crypto/tls client
// certificates. A station whose certificate the CSMS's client CA issued
// with its id as Subject CN connects without a password; another listed
// station's certificate on this station's URL, an unlisted station's,
// one from another CA, and no certificate at all (basic auth with the
// right password included) are refused, and the good station is still
// served.
func TestClientCertificates(t *testing.T) {
	// Without certificates a station needs its password.
	if _, err := New(Options{Stations: map[string]string{"CP-1": ""}, Dir: t.TempDir()}); err == nil || !strings.Contains(err.Error(), "no password") {
		t.Errorf("a station without a password under basic auth: %v, want refused naming the missing password", err)
	}
	ca, other := newPKI(t, "CSO root"), newPKI(t, "someone else's root")
	_, addr := startProfile3(t, ca, Options{Stations: map[string]string{"CP-1": "", "CP-2": ""}})
	roots := x509.NewCertPool()
	roots.AddCert(ca.cert)
	cp1, _, _ := ca.issue(t, "CP-1", false)
	cp2, _, _ := ca.issue(t, "CP-2", false)
	cp3, _, _ := ca.issue(t, "CP-3", false)
	forged, _, _ := other.issue(t, "CP-1", false)
	dialTLS := func(id string, certs []tls.Certificate, h http.Header) (*websocket.Conn, *http.Response, error) {
		d := websocket.Dialer{Subprotocols: []string{Subprotocol}, HandshakeTimeout: 20 * time.Second,
			TLSClientConfig: &tls.Config{RootCAs: roots, Certificates: certs, MinVersion: tls.VersionTLS12}}
		return d.Dial("wss://"+addr+PathPrefix+id, h)
	}
	good, _, err := dialTLS("CP-1", []tls.Certificate{cp1}, nil)
	if err != nil {
		t.Fatalf("CP-1 with its certificate: %v", err)
	}
	defer good.Close()
	if f := roundTrip(t, good, `[2,"b1","BootNotification",{"reason":"PowerUp","chargingStation":{"model":"m","vendorName":"v"}}]`); f.Type != TypeCallResult {
		t.Fatalf("BootNotification over profile 3: %+v", f)
	}
	basic := http.Header{}
	basic.Set("Authorization", "Basic Q1AtMTo=") // CP-1:
	for _, tc := range []struct {
		name    string
		id      string
		certs   []tls.Certificate
		h       http.Header
		handled bool // refused by the CSMS with 401 after the TLS handshake; else the handshake fails
	}{
		{"another station's certificate", "CP-1", []tls.Certificate{cp2}, nil, true},
		{"an unlisted station's certificate", "CP-3", []tls.Certificate{cp3}, nil, true},
		{"a certificate from another CA", "CP-1", []tls.Certificate{forged}, nil, false},
		{"no certificate, basic auth", "CP-1", nil, basic, false},
	} {
		ws, resp, err := dialTLS(tc.id, tc.certs, tc.h)
		if err == nil {
			ws.Close()
			t.Errorf("%s: connected", tc.name)
			continue
		}
		if tc.handled && (resp == nil || resp.StatusCode != http.StatusUnauthorized) {
			t.Errorf("%s: %v; want 401", tc.name, err)
		}
		if !tc.handled && resp != nil {
			t.Errorf("%s: got HTTP %d; want the TLS handshake refused", tc.name, resp.StatusCode)
		}
	}
	if f := roundTrip(t, good, `[2,"h1","Heartbeat",{}]`); f.Type != TypeCallResult {
		t.Errorf("after the refusals, CP-1's heartbeat got %+v", f)
	}
}

// TestOCPPRPCProfile3: the ocpp-rpc charge point over TLS with a client
// certificate and no password (security profile 3) runs a transaction
// with a held session's token and gets its vehicle's profile.
func TestOCPPRPCProfile3(t *testing.T) {
	nodePath := cpSim(t)
	run, err := ReadSimRun("testdata/sim")
	if err != nil {
		t.Fatal(err)
	}
	w := startAuthWorld(t, "lag-1")
	_, tok := w.connect(t, w.vehicles(t, "p3", 1)[0], "lag-1")
	ca := newPKI(t, "CSO root")
	_, addr := startProfile3(t, ca, Options{Stations: map[string]string{"CP-1": ""}, Authorizer: w.authorizer("lag-1"), Schedules: run})
	_, certPEM, keyPEM := ca.issue(t, "CP-1", false)
	dir := t.TempDir()
	files := map[string][]byte{"ca.pem": ca.pem, "cp.pem": certPEM, "cp.key": keyPEM}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	evs := runCP(t, nodePath, "wss://"+addr+"/ocpp", "CP-1", "-", []IDToken{tok},
		"CP_TLS_CA="+filepath.Join(dir, "ca.pem"), "CP_TLS_CERT="+filepath.Join(dir, "cp.pem"), "CP_TLS_KEY="+filepath.Join(dir, "cp.key"))
	var got *SetChargingProfileRequest
	for _, e := range evs {
		if e.Event == "SetChargingProfile" {
			got = &SetChargingProfileRequest{}
			if err := json.Unmarshal(e.Params, got); err != nil {
				t.Fatal(err)
			}
		}
	}
	want, _ := run.Schedule(0)
	if got == nil || len(got.ChargingProfile.ChargingSchedule[0].ChargingSchedulePeriod) != len(want.PowerW) {
		t.Fatalf("over profile 3 the station got profile %+v, want vehicle 0's %d periods; events %+v", got, len(want.PowerW), evs)
	}
	for k, p := range got.ChargingProfile.ChargingSchedule[0].ChargingSchedulePeriod {
		if p.Limit != LimitW(want.PowerW[k]) {
			t.Errorf("period %d: %v W, want %v W", k, p.Limit, LimitW(want.PowerW[k]))
		}
	}
}
