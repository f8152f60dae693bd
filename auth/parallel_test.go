package auth

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/flynn/noise"
)

// tamperer is a vehicle whose authentication request is damaged on the
// way: one ciphertext byte flipped.
type tamperer struct{ *BVSession }

func (v tamperer) Receive(now time.Time, frame []byte) ([][]byte, error) {
	fs, err := v.BVSession.Receive(now, frame)
	if err == nil && frame[0] == frameHS2 && len(fs) == 1 {
		fs[0][len(fs[0])/2] ^= 1
	}
	return fs, err
}

// TestParallelMatchesSequential admits the same vehicles once through the
// sequential API (Receive, Flush) and once with every frame's Step and
// the batch's parts on four goroutines, as authnet's LAG server does, and
// finds the same outcome: the same vehicles admitted with the same view,
// and the same ones refused for the same reason. Among them, in one batch
// with the honest ones: two forged pseudonym credentials (a genuine
// certificate with a session signature by another key; a certificate
// whose CA signature was altered) and a damaged request, each refused
// alone, and LSAG and visiting vehicles.
func TestParallelMatchesSequential(t *testing.T) {
	count := 240
	if testing.Short() {
		count = 60
	}
	n := newTestNet(t, CAConfig{}, "lag-seq", "lag-par")
	type vehicle struct {
		bv     *BV
		scheme Scheme
		kind   string // "", "forged-sig", "forged-cert", "tampered"
		want   error
	}
	var vs []vehicle
	victim := n.newBV("VIN-victim", "utility-a", 1)
	stolen := victim.pseudo[0].cert.Marshal()
	badCert := victim.pseudo[0].cert.Marshal()
	badCert[len(badCert)-1] ^= 1 // the CA's signature ends the encoding
	for i := range count {
		group := "utility-a"
		if i%11 == 3 {
			group = "utility-b" // visiting at both LAGs
		}
		v := vehicle{bv: n.newBV(fmt.Sprintf("VIN-%04d", i), group, 2), scheme: SchemePseudonym}
		switch {
		case i == count/3:
			v.kind, v.want = "forged-sig", ErrBadSignature
		case i == count/2:
			v.kind, v.want = "forged-cert", ErrNoCredential
		case i == 2*count/3:
			v.kind, v.want = "tampered", ErrChannel
		case i%7 == 2:
			v.scheme = SchemeLSAG
		}
		vs = append(vs, v)
	}
	// Every LSAG vehicle draws its ring from the whole group.
	for _, v := range vs {
		if v.scheme == SchemeLSAG {
			n.enrol(v.bv, 0)
		}
	}
	type result struct {
		errs  []error
		views map[int]LAGSessionView
		bv    map[int]BVView
	}
	run := func(lag string, workers int) result {
		node := n.lags[lag]
		pv := make([]phasedVehicle, len(vs))
		sessions := map[int]*BVSession{}
		for i, v := range vs {
			switch v.kind {
			case "forged-sig":
				_, wrong, _ := ed25519.GenerateKey(nil)
				pv[i] = &forger{cert: stolen, wrong: wrong, lagID: lag}
			case "forged-cert":
				pv[i] = &forger{cert: badCert, wrong: victim.pseudo[0].key, lagID: lag}
			default:
				s := v.bv.NewSession(SessionOptions{Schemes: []Scheme{v.scheme}, RingSize: 4, Role: Role(1 + i%3)})
				sessions[i] = s
				pv[i] = s
				if v.kind == "tampered" {
					pv[i] = tamperer{s}
				}
			}
		}
		a := admitPhased(t, n, node, &lagDriver{l: node.lag, workers: workers}, pv)
		r := result{errs: a.errs, views: map[int]LAGSessionView{}, bv: map[int]BVView{}}
		byID := map[ConnID]int{}
		for i, id := range a.ids {
			byID[id] = i
		}
		for _, v := range node.lag.Sessions() {
			i := byID[v.ID]
			v.ID, v.Binding, v.CredentialRef = 0, "", "" // differ by construction
			r.views[i] = v
		}
		for i, s := range sessions {
			if r.errs[i] == nil {
				r.bv[i] = s.View()
			}
		}
		closeAll(n, node, a.ids)
		return r
	}
	seq := run("lag-seq", 1)
	par := run("lag-par", 4)
	admitted := 0
	for i, v := range vs {
		se, pe := seq.errs[i], par.errs[i]
		if v.want != nil {
			if !errors.Is(se, v.want) || !errors.Is(pe, v.want) {
				t.Errorf("vehicle %d (%s): sequential %v, parallel %v, want %v", i, v.kind, se, pe, v.want)
			}
			continue
		}
		if se != nil || pe != nil {
			t.Errorf("vehicle %d (%s, %s): sequential %v, parallel %v", i, v.scheme, v.bv.Group, se, pe)
			continue
		}
		admitted++
		sv, pv := seq.views[i], par.views[i]
		if sv != pv || !sv.Active || !sv.Confirmed || sv.Scheme != v.scheme || sv.Home != (v.bv.Group == "utility-a") {
			t.Errorf("vehicle %d: LAG's view\nsequential %+v\nparallel   %+v", i, sv, pv)
		}
		sb, pb := seq.bv[i], par.bv[i]
		sb.LAGID, pb.LAGID = "", ""
		if fmt.Sprint(sb) != fmt.Sprint(pb) || !sb.BatchConfirmed {
			t.Errorf("vehicle %d: its view\nsequential %+v\nparallel   %+v", i, sb, pb)
		}
	}
	if admitted != count-3 || len(seq.views) != admitted || len(par.views) != admitted {
		t.Fatalf("admitted %d of %d honest vehicles; the LAGs hold %d and %d sessions", admitted, count-3, len(seq.views), len(par.views))
	}
}

// TestStepRules: a second frame of a session while one is in flight is
// refused without touching the session; a session closed while its frame
// ran is forgotten; Finish runs a Step the shell did not run; ApplyBatch
// verifies parts no one verified; losing the CA link while a batch is
// verified refuses none of its sessions.
func TestStepRules(t *testing.T) {
	n := newTestNet(t, CAConfig{}, "lag-1")
	n.autoFlush = false
	node := n.lags["lag-1"]
	l := node.lag
	bv := n.newBV("VIN-1", "utility-a", 3)

	open := func() (ConnID, *BVSession, []byte) {
		s := bv.NewSession(SessionOptions{Schemes: []Scheme{SchemePseudonym}})
		id, out, err := l.Open(n.now)
		if err != nil {
			t.Fatal(err)
		}
		f, err := s.Receive(n.now, out.Frames[0].Data)
		if err != nil {
			t.Fatal(err)
		}
		return id, s, f[0]
	}

	// Busy session.
	id, s, hs1 := open()
	st := l.Begin(n.now, id, hs1)
	st2 := l.Begin(n.now, id, hs1)
	st.Run()
	st2.Run()
	if out, err := l.Finish(st2); !errors.Is(err, ErrState) || len(out.Frames)+len(out.Close) != 0 {
		t.Fatalf("second step in flight: %v %+v", err, out)
	}
	out, err := l.Finish(st) // not run by the shell: Finish does nothing more
	if err != nil || len(out.Frames) != 1 {
		t.Fatalf("first step: %v", err)
	}
	// Finish without Run.
	auth, err := s.Receive(n.now, out.Frames[0].Data)
	if err != nil {
		t.Fatal(err)
	}
	if out, err := l.Finish(l.Begin(n.now, id, auth[0])); err != nil || l.Pending() != 1 {
		t.Fatalf("Finish without Run: %v %+v", err, out)
	}

	// Closed while running.
	id2, _, hs1 := open()
	st = l.Begin(n.now, id2, hs1)
	l.Close(id2)
	st.Run()
	if out, err := l.Finish(st); !errors.Is(err, ErrUnknown) || len(out.Frames) != 0 {
		t.Fatalf("step of a closed session: %v %+v", err, out)
	}

	// A batch: one part verified, the link lost meanwhile, then applied.
	b := l.TakeBatch()
	if b.Len() != 1 || l.Pending() != 0 {
		t.Fatalf("batch of %d, %d pending", b.Len(), l.Pending())
	}
	b.VerifyPart(1, 2) // the empty second half; the first is left to ApplyBatch
	if out := l.CADisconnected(); len(out.Close) != 0 {
		t.Fatalf("link loss refused a session being verified: %+v", out)
	}
	n.link(node)
	out = l.ApplyBatch(n.now, b)
	if len(out.Close) != 0 || len(out.Frames) != 1 || out.Frames[0].To != ToCA {
		t.Fatalf("batch applied: %+v", out)
	}
	n.lagOut(node, out)
	n.run()
	if v := l.Sessions(); len(v) != 1 || v[0].ID != id {
		t.Fatalf("sessions after the batch: %+v", v)
	}
}

// TestSealMsg: sealMsg gives the frame seal(encode(m)) gives, for a short
// message and one of several chunks, and the peer opens both.
func TestSealMsg(t *testing.T) {
	pair := func() (*channel, *channel) {
		static, _ := dh25519{}.GenerateKeypair(rand.Reader)
		sk, err := newStaticKey(static)
		if err != nil {
			t.Fatal(err)
		}
		a, _ := newChannel(noise.HandshakeNK, true, nil, staticKey{}, sk.dh.Public)
		b, _ := newChannel(noise.HandshakeNK, false, nil, sk, nil)
		m1, _ := a.write(nil)
		b.read(m1)
		m2, _ := b.write(nil)
		a.read(m2)
		return a, b
	}
	big := &verifyMsg{}
	for range 300 {
		big.Entries = append(big.Entries, verifyEntry{Cred: make([]byte, 254), Sig: make([]byte, 64)})
	}
	for _, m := range []message{&grantMsg{}, &rejectMsg{Code: 3}, big} {
		a, b := pair()
		f1, err := a.sealMsg(m)
		if err != nil {
			t.Fatal(err)
		}
		f2, err := a.seal(encode(m))
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range [][]byte{f1, f2} {
			pt, err := b.open(f[1:])
			if err != nil || !bytes.Equal(pt, encode(m)) || f[0] != frameData {
				t.Fatalf("%T: %v", m, err)
			}
		}
		if len(f1) != len(f2) || !bytes.Equal(f1[:3], f2[:3]) {
			t.Fatalf("%T: frames of %d and %d bytes", m, len(f1), len(f2))
		}
	}
}
