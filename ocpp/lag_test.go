package ocpp

import (
	"context"
	"encoding/hex"
	"fmt"
	"net"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/gridveil/gridveil/auth"
	"github.com/gridveil/gridveil/auth/authnet"
)

// authWorld is a real CA and real LAGs (auth/authnet's servers on
// loopback), so that the CSMS checks idTokens against sessions a LAG
// actually admitted.
type authWorld struct {
	dir    string
	ca     *authnet.CAServer
	caAddr string
	lags   map[string]*authnet.LAGServer
	addrs  map[string]string
	vs     *authnet.Store
}

// startAuthWorld serves a CA and one LAG per id (group utility-a) until
// the test ends.
func startAuthWorld(t testing.TB, lagIDs ...string) *authWorld {
	t.Helper()
	w := &authWorld{dir: t.TempDir(), lags: map[string]*authnet.LAGServer{}, addrs: map[string]string{}}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait() })
	cs, err := authnet.OpenStore(filepath.Join(w.dir, "ca"))
	if err != nil {
		t.Fatal(err)
	}
	if w.ca, err = authnet.OpenCA(cs, auth.CAConfig{}, nil, nil); err != nil {
		t.Fatal(err)
	}
	serve := func(s interface {
		Serve(context.Context, net.Listener) error
	}) string {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() { defer wg.Done(); _ = s.Serve(ctx, ln) }()
		return ln.Addr().String()
	}
	w.caAddr = serve(w.ca)
	for _, id := range lagIDs {
		// Each party enrols with the credential the operator had the CA
		// issue for its name (no shared enrolment token).
		cred, err := w.ca.IssueCredential(auth.CredentialLAG, id)
		if err != nil {
			t.Fatal(err)
		}
		ls, err := authnet.OpenStore(filepath.Join(w.dir, id))
		if err != nil {
			t.Fatal(err)
		}
		l, err := authnet.OpenLAG(ctx, ls, authnet.LAGOptions{ID: id, Group: "utility-a", CAAddr: w.caAddr, CA: w.ca.Public(), Token: cred,
			ConfirmEvery: 50 * time.Millisecond}, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		w.lags[id], w.addrs[id] = l, serve(l)
		select {
		case <-l.Linked():
		case <-time.After(60 * time.Second):
			t.Fatalf("LAG %s did not link to the CA", id)
		}
	}
	if w.vs, err = authnet.OpenStore(filepath.Join(w.dir, "bv")); err != nil {
		t.Fatal(err)
	}
	return w
}

// authorizer is the CSMS's Authorizer for LAG id: its active sessions.
func (w *authWorld) authorizer(id string) Authorizer {
	return NewLAGSessions(w.lags[id])
}

// vehicles enrols n vehicles (names BV-<prefix>-i) with the CA.
func (w *authWorld) vehicles(t testing.TB, prefix string, n int) []*authnet.Vehicle {
	t.Helper()
	out := make([]*authnet.Vehicle, n)
	for i := range out {
		v, err := authnet.OpenVehicle(w.vs, fmt.Sprintf("BV-%s-%d", prefix, i), "utility-a", w.ca.Public())
		if err != nil {
			t.Fatal(err)
		}
		cred, err := w.ca.IssueCredential(auth.CredentialVehicle, v.BV.RealID)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		err = v.Enrol(ctx, w.caAddr, cred, 2)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		out[i] = v
	}
	return out
}

// connect opens v's session with LAG id, waits until the LAG holds it as
// active (the vehicle is charging before the LAG has its grant), and
// returns the session and the token the vehicle derives from it.
func (w *authWorld) connect(t testing.TB, v *authnet.Vehicle, id string) (*authnet.Session, IDToken) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	s, err := v.Connect(ctx, w.addrs[id], auth.SessionOptions{Role: auth.RoleLoad, ExpectLAG: id})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	b := s.S.Binding()
	st, err := s.S.StationToken()
	if err != nil {
		t.Fatal(err)
	}
	w.waitSession(t, id, b, true)
	return s, SessionToken(st)
}

// waitSession waits (bounded) until LAG id holds, or no longer holds, the
// session with channel binding b.
func (w *authWorld) waitSession(t testing.TB, id string, b [32]byte, held bool) {
	t.Helper()
	want := hex.EncodeToString(b[:])
	for i := 0; ; i++ {
		has := false
		for _, v := range w.lags[id].ActiveSessions() {
			has = has || v.Binding == want
		}
		if has == held {
			return
		}
		if i == 6000 {
			t.Fatalf("LAG %s: session held %v after 60 s, want %v", id, has, held)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
