package auth

import (
	"crypto/rand"
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/gridveil/gridveil/auth/wire"
)

// fillGroups gives the CA n enrolled-looking ring members spread over
// groups (random bytes: a list's keys are decoded only when a ring uses
// them), as if n vehicles had enrolled, without their enrolments.
func fillGroups(tb testing.TB, c *CA, n, groups int) {
	tb.Helper()
	for i := range n {
		g := fmt.Sprintf("utility-%02d", i%groups)
		gk := c.groups[g]
		if gk == nil {
			gk = newGroupKeys(nil, nil)
			c.groups[g] = gk
		}
		var k [32]byte
		_, _ = rand.Read(k[:])
		c.addRingKey(g, gk, k)
		c.groupVer[g]++
	}
}

// linkBytes links a LAG of the test net afresh and returns the sizes of
// the frames the CA sent on the link.
func linkFrames(n *testNet, node *lagNode) []int {
	var sizes []int
	n.tamper = func(h hop) []byte {
		if h.from == "ca" && h.to == "lag:"+node.name {
			sizes = append(sizes, len(h.data))
		}
		return h.data
	}
	defer func() { n.tamper = nil }()
	n.lagOut(node, node.lag.CADisconnected())
	n.link(node)
	return sizes
}

// TestSyncScales: a LAG that starts empty at a CA whose group list is
// larger than a whole frame (140,000 keys, 4.5 MB; GRIDVEIL_SYNC_KEYS
// sets another size, 1000000 for the 10^6 case) receives it in chunks,
// every frame under the link's limit, and then holds exactly the CA's
// list; a later sync after one enrolment and one revocation carries the
// changed group's header and no keys, and a re-link of a LAG that holds
// the lists carries none.
func TestSyncScales(t *testing.T) {
	keys := 140_000
	if s := os.Getenv("GRIDVEIL_SYNC_KEYS"); s != "" {
		var err error
		if keys, err = strconv.Atoi(s); err != nil || keys < 1 {
			t.Fatalf("GRIDVEIL_SYNC_KEYS=%q: give a positive count", s)
		}
	}
	if keys*32 <= wire.MaxFrame && os.Getenv("GRIDVEIL_SYNC_KEYS") == "" {
		t.Fatal("the test's list must exceed one frame")
	}
	n := newTestNet(t, CAConfig{}, "lag-1")
	node := n.lags["lag-1"]
	fillGroups(t, n.ca, keys, 1)
	node.lag = relaunchLAG(t, n, node) // starts empty, as after a restart
	sizes := linkFrames(n, node)
	if !node.lag.Linked() {
		t.Fatalf("the LAG did not link: %v", n.caErrs)
	}
	total := 0
	for _, s := range sizes {
		total += s
		if s > wire.MaxFrame {
			t.Fatalf("a frame of %d bytes on the link, over the limit of %d", s, wire.MaxFrame)
		}
	}
	want := n.ca.groups["utility-00"].keys
	got := node.lag.groups["utility-00"]
	if got == nil || len(got.keys) != len(want) {
		t.Fatalf("the LAG holds %v keys of %d", got, len(want))
	}
	for i := range want {
		if got.keys[i] != want[i] {
			t.Fatalf("key %d differs", i)
		}
	}
	if total < keys*32 || len(sizes) < keys/syncChunkKeys+1 {
		t.Fatalf("%d frames, %d bytes for %d keys", len(sizes), total, keys)
	}
	first := len(sizes)

	// A new vehicle of that group enrols: the list comes in chunks too,
	// every frame under the limit (runEnrolment checks), and the vehicle
	// checks the whole list's chain against the signed head.
	nb, err := NewBV("VIN-BIG", "utility-00", n.ca.Public())
	if err != nil {
		t.Fatal(err)
	}
	e, f, err := nb.Enrol(n.admit(nb), 1)
	if err != nil {
		t.Fatal(err)
	}
	if err := n.runEnrolment(e, f); err != nil || nb.GroupSize() != keys+1 {
		t.Fatalf("enrolment in a group of %d: %v, %d keys", keys, err, nb.GroupSize())
	}
	// A refill sends only what changed: one key, here.
	e, f, err = nb.Enrol([32]byte{}, 0)
	if err != nil {
		t.Fatal(err)
	}
	var refill int
	n.tamper = nil
	id := n.ca.Open()
	for f != nil {
		out, err := n.ca.Receive(n.now, id, f)
		if err != nil {
			t.Fatal(err)
		}
		f = nil
		for _, fr := range out.Frames {
			if fr.To == id {
				refill += len(fr.Data)
				if f, err = e.Receive(fr.Data); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	n.ca.Close(id)
	if !e.Done() || refill > 4<<10 {
		t.Fatalf("a refill: done %v, %d bytes", e.Done(), refill)
	}

	// One enrolment (pushed as a group addition) and a revocation: the
	// sync that follows carries the group header, not the list.
	b := n.newBV("VIN-NEW", "utility-00", 1)
	var after []int
	n.tamper = func(h hop) []byte {
		if h.from == "ca" {
			after = append(after, len(h.data))
		}
		return h.data
	}
	o, err := n.ca.RevokeBV(n.now, b.RealID)
	if err != nil {
		t.Fatal(err)
	}
	n.caOut(o)
	n.run()
	n.tamper = nil
	if sum := after[0] + after[len(after)-1]; len(after) > 2 || sum > 8<<10 {
		t.Fatalf("the sync after a revocation: frames %v, want the new list of serials and a sync of a few KB", after)
	}
	if g := node.lag.groups["utility-00"]; len(g.keys) != keys+2 || !g.revoked[uint32(keys+1)] {
		t.Fatalf("the LAG's list after the revocation: %d keys, revoked %v", len(g.keys), g.revoked)
	}
	// A re-link: the LAG says what it holds, and gets no keys.
	sizes = linkFrames(n, node)
	for _, s := range sizes {
		if s > 8<<10 {
			t.Fatalf("a re-link of a LAG that holds the lists: frames %v", sizes)
		}
	}
	// A lost group addition: a frame lost on the Noise link breaks it
	// (the next frame fails to decrypt); the LAG re-links saying what it
	// holds, and ends with the CA's list, sent from where it stopped.
	drop := true
	n.tamper = func(h hop) []byte {
		if h.from == "ca" && h.to == "lag:"+node.name && drop {
			drop = false
			return nil
		}
		return h.data
	}
	n.newBV("VIN-LOST", "utility-00", 1)
	n.tamper = nil
	o, err = n.ca.RevokeBV(n.now, "VIN-LOST")
	if err != nil {
		t.Fatal(err)
	}
	n.caOut(o)
	n.run()
	if len(n.caErrs) == 0 {
		t.Fatal("a lost frame did not break the link")
	}
	n.caErrs = nil
	relink := linkFrames(n, node)
	if g := node.lag.groups["utility-00"]; !node.lag.Linked() || len(g.keys) != keys+3 || !g.revoked[uint32(keys+2)] {
		t.Fatalf("after a lost addition and a re-link: %d keys of %d, linked %v", len(g.keys), keys+3, node.lag.Linked())
	}
	for _, s := range relink {
		if s > 8<<10 {
			t.Fatalf("the re-link after a lost addition: frames %v", relink)
		}
	}
	t.Logf("%d keys: first sync %d frames, %d bytes; a refill's answer %d bytes; after a revocation %v; re-link %v", keys, first, total, refill, after, sizes)
}

// relaunchLAG replaces a LAG of the test net by a new one with the same
// keys and no state, as after a restart.
func relaunchLAG(t *testing.T, n *testNet, node *lagNode) *LAG {
	t.Helper()
	l, err := NewLAG(node.lag.cfg, n.now)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// BenchmarkSync measures what a LAG's sync costs the CA at
// GRIDVEIL_BENCH_VEHICLES ring members (default 100000) in 100 groups:
// "full" is a sync to a LAG that holds nothing (what every sync was
// before it carried only changes: every group's whole list), "changed"
// the sync after one enrolment and one revocation in one group, to a LAG
// that holds the rest. bytes/sync is what goes on the link.
func BenchmarkSync(b *testing.B) {
	keys := 100_000
	if s := os.Getenv("GRIDVEIL_BENCH_VEHICLES"); s != "" {
		var err error
		if keys, err = strconv.Atoi(s); err != nil || keys < 1 {
			b.Fatalf("GRIDVEIL_BENCH_VEHICLES=%q: give a positive count", s)
		}
	}
	n := newTestNet(b, CAConfig{}, "lag-1")
	fillGroups(b, n.ca, keys, 100)
	l := n.ca.lags["lag-1"]
	link := l.link
	run := func(b *testing.B, before func()) {
		bytes := 0
		for b.Loop() {
			b.StopTimer()
			before()
			b.StartTimer()
			var out Output
			if err := n.ca.sendSync(&out, link, n.now, "lag-1"); err != nil {
				b.Fatal(err)
			}
			bytes = 0
			for _, f := range out.Frames {
				bytes += len(f.Data)
			}
		}
		b.ReportMetric(float64(bytes), "bytes/sync")
	}
	b.Run("full", func(b *testing.B) {
		run(b, func() { l.sent = map[string]groupHave{} })
	})
	b.Run("changed", func(b *testing.B) {
		var k [32]byte
		run(b, func() {
			var out Output
			_ = n.ca.sendSync(&out, link, n.now, "lag-1") // the LAG holds everything
			_, _ = rand.Read(k[:])
			n.ca.addRingKey("utility-07", n.ca.groups["utility-07"], k)
			n.ca.groupVer["utility-07"]++
			n.ca.groups["utility-07"].revoked[3] = !n.ca.groups["utility-07"].revoked[3]
			n.ca.groupVer["utility-07"]++
		})
	})
}

// TestCRLSyncScales: a revocation list longer than a frame (one vehicle
// revoked with 270,000 listed serials: 4.3 MB) reaches a LAG in chunks,
// every frame under the limit, and the LAG holds all of it; a sync that
// follows without a new revocation carries no serials, nor a re-link.
func TestCRLSyncScales(t *testing.T) {
	n := newTestNet(t, CAConfig{}, "lag-1")
	node := n.lags["lag-1"]
	b := n.newBV("VIN-HEAVY", "utility-a", 1)
	idx := n.ca.byReal[b.RealID]
	const serials = 270_000
	for i := range serials {
		var s [16]byte
		s[0], s[1], s[2], s[3] = 0xee, byte(i>>16), byte(i>>8), byte(i)
		n.ca.serials[s] = &serialInfo{bv: idx, notAfter: n.now.Add(time.Hour).Unix()}
	}
	var sizes []int
	n.tamper = func(h hop) []byte {
		if h.from == "ca" {
			sizes = append(sizes, len(h.data))
		}
		return h.data
	}
	o, err := n.ca.RevokeBV(n.now, b.RealID)
	if err != nil {
		t.Fatal(err)
	}
	n.caOut(o)
	n.run()
	n.tamper = nil
	total := 0
	for _, s := range sizes {
		total += s
		if s > wire.MaxFrame {
			t.Fatalf("a frame of %d bytes, over the limit of %d", s, wire.MaxFrame)
		}
	}
	if len(node.lag.crl) != serials+1 || total < 16*serials || len(n.caErrs) > 0 {
		t.Fatalf("the LAG holds %d revoked serials of %d (%d bytes in %d frames; %v)", len(node.lag.crl), serials+1, total, len(sizes), n.caErrs)
	}
	// Another sync at the same version, and a re-link: no serials.
	var out Output
	if err := n.ca.sendSync(&out, n.ca.lags["lag-1"].link, n.now, "lag-1"); err != nil {
		t.Fatal(err)
	}
	for _, f := range out.Frames {
		if len(f.Data) > 8<<10 {
			t.Fatalf("a sync at an unchanged list: a frame of %d bytes", len(f.Data))
		}
	}
	n.lagOut(node, node.lag.CADisconnected()) // the sync above was not delivered: start the link afresh
	for _, s := range linkFrames(n, node) {
		if s > 8<<10 {
			t.Fatalf("a re-link at an unchanged list: a frame of %d bytes", s)
		}
	}
	if len(node.lag.crl) != serials+1 || !node.lag.Linked() {
		t.Fatalf("after the re-link: %d revoked serials, linked %v", len(node.lag.crl), node.lag.Linked())
	}
}
