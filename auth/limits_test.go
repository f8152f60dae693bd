package auth

import (
	"fmt"
	"testing"
)

// TestLargeRing: a vehicle signs with a ring of 100 and of MaxRingSize
// members and is admitted; the ring reference of more than 75 members
// once exceeded the cap on a credential field and was refused as
// malformed.
func TestLargeRing(t *testing.T) {
	if testing.Short() {
		t.Skip("enrols 256 vehicles")
	}
	n := newTestNet(t, CAConfig{}, "lag-1")
	var bvs []*BV
	for i := range MaxRingSize {
		bvs = append(bvs, n.newBV(fmt.Sprintf("VIN-%03d", i), "utility-a", 0))
	}
	for _, size := range []int{100, MaxRingSize} {
		c := n.connect(bvs[size-1], "lag-1", SessionOptions{Schemes: []Scheme{SchemeLSAG}, RingSize: size})
		n.mustCharging(c)
		if v := n.lagView(c); v.Scheme != SchemeLSAG {
			t.Fatalf("ring of %d: %+v", size, v)
		}
		n.bye(c)
	}
}

// TestVerifyMessagesBounded: however many requests wait for the CA, each
// verification message stays under maxVerifyBytes of entries, far below
// the link's frame limit.
func TestVerifyMessagesBounded(t *testing.T) {
	n := newTestNet(t, CAConfig{}, "lag-1")
	l := n.lags["lag-1"].lag
	for i := range 300 {
		e := &verifyEntry{Scheme: SchemeLSAG, Cred: make([]byte, maxCred), Sig: make([]byte, maxSigLen)}
		e.Binding[0], e.Binding[1] = byte(i), byte(i>>8)
		l.awaitCA = append(l.awaitCA, &lagSession{entry: e})
	}
	out := l.sendAwaiting(Output{})
	entries := 0
	for _, f := range out.Frames {
		if f.To != ToCA || len(f.Data) > maxVerifyBytes+maxVerifyBytes/16 {
			t.Fatalf("frame of %d bytes to %d", len(f.Data), f.To)
		}
		co, err := n.ca.Receive(n.now, n.lags["lag-1"].caConn, f.Data)
		if err != nil {
			t.Fatal(err)
		}
		var vs verdictsMsg
		pt, err := n.lags["lag-1"].lag.link.open(co.Frames[0].Data[1:])
		if err != nil {
			t.Fatal(err)
		}
		if err := decode(pt, &vs); err != nil {
			t.Fatal(err)
		}
		entries += len(vs.Verdicts)
	}
	if len(out.Frames) < 3 || entries != 300 {
		t.Fatalf("%d messages with %d verdicts", len(out.Frames), entries)
	}
}
