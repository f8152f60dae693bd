package auth

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"testing"
	"time"
)

// TestBatchVerification: a LAG gathers many authentication requests,
// verifies them in one batch, asks the CA for all of them in one message,
// and refuses exactly the one forged among them.
func TestBatchVerification(t *testing.T) {
	const count = 150
	n := newTestNet(t, CAConfig{}, "lag-1")
	n.autoFlush = false
	var cs []*bvConn
	for i := range count {
		b := n.newBV(fmt.Sprintf("VIN-%04d", i), "utility-a", 1)
		cs = append(cs, n.connect(b, "lag-1", SessionOptions{Schemes: []Scheme{SchemePseudonym}}))
		if i == count/2 {
			// A forger in the middle of the batch: a genuine certificate
			// (copied from vehicle 0) signed with the wrong key.
			a := n.attack("lag-1", choice{Version: ProtocolVersion, Scheme: SchemePseudonym})
			cert := cs[0].s.cred.pseudo.cert.Marshal()
			_, wrong, _ := ed25519.GenerateKey(nil)
			stmt := authStatement(a.ch.binding, a.challenge, "lag-1", SchemePseudonym, RoleLoad, 0, cert)
			if err := a.send(&authReq{Scheme: SchemePseudonym, Role: RoleLoad, Cred: cert, Sig: ed25519.Sign(wrong, stmt)}); err != nil {
				t.Fatalf("forgery refused before the batch: %v", err)
			}
			defer func() {
				if !errors.Is(a.c.lagErr, ErrBadSignature) {
					t.Errorf("forger in the batch: %v", a.c.lagErr)
				}
			}()
		}
	}
	l := n.lags["lag-1"]
	if l.lag.Pending() != count+1 {
		t.Fatalf("%d pending", l.lag.Pending())
	}
	n.captured = nil
	n.lagOut(l, l.lag.Flush(n.now))
	n.run()
	if got := len(frameLens(n.captured, "lag", "ca")); got != 1 {
		t.Fatalf("%d verification messages to the CA, want 1", got)
	}
	for _, c := range cs {
		n.mustCharging(c)
	}
	n.captured = nil
	n.lagOut(l, l.lag.ConfirmBatch(n.now))
	n.run()
	for _, c := range cs {
		if v := c.s.View(); !v.BatchConfirmed || v.BatchSize != count {
			t.Fatalf("%s: %+v %v", c.name, v, c.err)
		}
	}
}

// TestMerkle checks every leaf of trees of every size up to 33 and that
// another leaf or index fails.
func TestMerkle(t *testing.T) {
	for size := 1; size <= 33; size++ {
		leaves := make([][32]byte, size)
		for i := range leaves {
			leaves[i][0], leaves[i][1] = byte(i), byte(size)
		}
		root, paths := merkleTree(leaves)
		for i, l := range leaves {
			if !merkleVerify(root, l, uint32(i), uint32(size), paths[i]) {
				t.Fatalf("size %d leaf %d", size, i)
			}
			other := l
			other[5] = 1
			// (The count is bound by the LAG's signature, not by the path.)
			if merkleVerify(root, other, uint32(i), uint32(size), paths[i]) ||
				(size > 1 && merkleVerify(root, l, uint32((i+1)%size), uint32(size), paths[i])) {
				t.Fatalf("size %d leaf %d: a wrong proof verifies", size, i)
			}
		}
	}
}

// TestPersistence: the CA restarts from its snapshot and still refuses a
// pseudonym used before the restart; a vehicle restored from its state
// resumes with the ticket it held.
func TestPersistence(t *testing.T) {
	n := newTestNet(t, CAConfig{}, "lag-1")
	b := n.newBV("VIN-1", "utility-a", 3)
	st, err := b.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	stale, err := ParseBV(st) // holds the pseudonym the next session uses
	if err != nil {
		t.Fatal(err)
	}
	c := n.connect(b, "lag-1", SessionOptions{Schemes: []Scheme{SchemePseudonym}, Resume: true})
	n.mustCharging(c)
	n.bye(c)

	snap, err := n.ca.Snapshot(n.now)
	if err != nil {
		t.Fatal(err)
	}
	ca2, err := RestoreCA(n.keys, CAConfig{}, snap)
	if err != nil {
		t.Fatal(err)
	}
	n.ca = ca2
	l := n.lags["lag-1"]
	n.lagOut(l, l.lag.CADisconnected())
	n.link(l)
	if !l.lag.Linked() {
		t.Fatalf("LAG did not re-link after the CA restart: %v", n.caErrs)
	}
	c = n.connect(stale, "lag-1", SessionOptions{Schemes: []Scheme{SchemePseudonym}})
	if !errors.Is(c.err, ErrCloned) {
		t.Fatalf("pseudonym used before the restart accepted again: %v", c.err)
	}

	st, err = b.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	b2, err := ParseBV(st)
	if err != nil {
		t.Fatal(err)
	}
	if !b2.HasTicket("lag-1") || b2.Pseudonyms() != b.Pseudonyms() {
		t.Fatal("vehicle state lost on restore")
	}
	// The CA forgot the session the ticket came from (sessions are not
	// durable), so resumption is refused and the vehicle authenticates
	// in full.
	c = n.connect(b2, "lag-1", SessionOptions{Resume: true})
	if c.s.State() == BVCharging {
		t.Fatal("resumption from a session the CA no longer knows")
	}
	c = n.connect(b2, "lag-1", SessionOptions{})
	n.mustCharging(c)
	if _, err := ParseBV([]byte(`{"version":2}`)); !errors.Is(err, ErrMalformed) {
		t.Fatalf("bad state: %v", err)
	}
	if _, err := RestoreCA(n.keys, CAConfig{}, []byte(`{"version":1,"bvs":[null]}`)); !errors.Is(err, ErrMalformed) {
		t.Fatalf("bad CA state: %v", err)
	}
}

// TestKeysRoundTrip: the CA's secrets and public keys survive encoding.
func TestKeysRoundTrip(t *testing.T) {
	k, err := GenerateCAKeys()
	if err != nil {
		t.Fatal(err)
	}
	k2, err := ParseCAKeys(k.Marshal())
	if err != nil || k2.Public() != k.Public() || k2.LinkSecret != k.LinkSecret || k2.EnrolToken != k.EnrolToken {
		t.Fatal("CA keys", err)
	}
	p, err := ParseCAPublic(k.Public().Marshal())
	if err != nil || p != k.Public() {
		t.Fatal("CA public", err)
	}
	if _, err := ParseCAKeys(k.Marshal()[1:]); !errors.Is(err, ErrMalformed) {
		t.Fatal(err)
	}
}

// benchLAG measures what one LAG spends to admit count vehicles: Noise
// handshakes, credential checks, one batch verification and the permits'
// delivery. The vehicles' and the CA's work is excluded.
func benchLAG(b *testing.B, sc Scheme, count int) {
	n := newTestNet(b, CAConfig{}, "lag-1")
	n.autoFlush = false
	var bvs []*BV
	for i := range count {
		bvs = append(bvs, n.newBV(fmt.Sprintf("VIN-%05d", i), "utility-a", 0))
	}
	l := n.lags["lag-1"]
	var lagTime time.Duration
	timed := func(f func()) {
		t := time.Now()
		f()
		lagTime += time.Since(t)
	}
	// Route frames by hand so that only the LAG's calls are timed.
	for b.Loop() {
		var ids []ConnID
		var toLAG [][]byte
		for _, v := range bvs {
			if sc == SchemePseudonym {
				// fresh certificates for this round (enrolment is not timed)
				n.enrol(v, 1)
			}
			s := v.NewSession(SessionOptions{Schemes: []Scheme{sc}, RingSize: 16})
			var id ConnID
			var out Output
			timed(func() { id, out, _ = l.lag.Open(n.now) })
			f, err := s.Receive(n.now, out.Frames[0].Data)
			if err != nil {
				b.Fatal(err)
			}
			timed(func() { out, _ = l.lag.Receive(n.now, id, f[0]) })
			f, err = s.Receive(n.now, out.Frames[0].Data)
			if err != nil {
				b.Fatal(err)
			}
			ids, toLAG = append(ids, id), append(toLAG, f[0])
		}
		for i, id := range ids {
			timed(func() { l.lag.Receive(n.now, id, toLAG[i]) })
		}
		var out Output
		timed(func() { out = l.lag.Flush(n.now) })
		if len(out.Frames) != 1 {
			b.Fatalf("flush sent %d frames", len(out.Frames))
		}
		co, err := n.ca.Receive(n.now, l.caConn, out.Frames[0].Data)
		if err != nil {
			b.Fatal(err)
		}
		timed(func() { out, err = l.lag.ReceiveCA(n.now, co.Frames[0].Data) })
		if err != nil || len(out.Frames) != count {
			b.Fatalf("%d permits, %v", len(out.Frames), err)
		}
		for _, id := range ids {
			n.lagOut(l, l.lag.Close(id)) // the CA hears the sessions end
		}
		n.run()
	}
	b.ReportMetric(float64(lagTime.Microseconds())/float64(b.N*count), "µs/vehicle")
	b.ReportMetric(lagTime.Seconds()/float64(b.N), "s/batch")
}

// BenchmarkLAGAdmit: one op admits a batch of vehicles at one LAG; the
// metrics give the LAG's own time per vehicle and per batch.
func BenchmarkLAGAdmit(b *testing.B) {
	for _, c := range []struct {
		sc    Scheme
		count int
	}{{SchemePseudonym, 1000}, {SchemeLSAG, 100}} {
		b.Run(fmt.Sprintf("%s/n=%d", c.sc, c.count), func(b *testing.B) { benchLAG(b, c.sc, c.count) })
	}
}
