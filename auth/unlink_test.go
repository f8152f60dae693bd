package auth

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"math/big"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/flynn/noise"

	"github.com/gridveil/gridveil/auth/lsag"
	"github.com/gridveil/gridveil/auth/pseudonym"
)

// Unlinkability (issue 6): what a LAG stores and sees for two sessions of
// one vehicle must be distributed like what it stores and sees for two
// sessions of two different vehicles of the same anonymity set.
//
// The test records a LAG's whole view of each session: every frame it
// receives and sends to the vehicle and to the CA, as bytes and, after
// decryption, in the clear; the handshake payloads; what it keeps of the
// session (the forwarded evidence, the permit, the credential, the tickets
// it can open, its LAGSessionView); and every event it logs. Then it pairs
// sessions: two of one vehicle ("same"), or one of a vehicle and one of
// another vehicle of the same group or ring ("different"), with the same
// timing. Distinguishers score every pair (equality of each field, shared
// 8-byte windows, frame lengths, distances between timestamps, ring
// overlap, ...), and a two-sample rank test (Mann-Whitney) compares the
// scores of same and different pairs: a distinguisher whose |z| exceeds
// zMax links sessions and fails the test.
//
// The test can fail: the leaky cases (a vehicle reusing a pseudonym;
// pseudonym windows that follow each vehicle's enrolment time, which is how
// the CA issued them before; LSAG rings drawn per scope, how vehicles drew
// them before) must be caught, and LSAG sessions at one LAG within one
// epoch must be linked (that is how clones are detected).
//
// A LAG's persisted state is its keys and certificate, which do not change
// with sessions, and its evidence file (one record per admitted session),
// which is in the view; so is everything it keeps in memory per session.

// zMax bounds |z| for an unlinkable distinguisher. With about 60
// distinguishers in each of 5 honest cases, a false alarm has probability
// below 300 * 6e-7 ≈ 2e-4; a leak of one bit in every session (same pairs
// always agree, different pairs half the time) gives z ≈ 9 with 100 pairs.
const zMax = 5.0

// lagView is one LAG's view of one session (or of several sessions the LAG
// links by design, like a home session and its resumption).
type lagView struct {
	fields map[string][]byte
	order  []string
	blob   []byte // everything, concatenated
	lens   []int  // lengths of the frames between the vehicle and the LAG
	ring   []uint32
}

func newView() *lagView { return &lagView{fields: map[string][]byte{}} }

// add records a named field (a repeated name gets a suffix) and appends it
// to the blob.
func (v *lagView) add(name string, b []byte) {
	key := name
	for i := 2; ; i++ {
		if _, dup := v.fields[key]; !dup {
			break
		}
		key = fmt.Sprintf("%s#%d", name, i)
	}
	v.fields[key] = slices.Clone(b)
	v.order = append(v.order, key)
	v.blob = append(v.blob, b...)
}

func (v *lagView) addInt(name string, x int64) {
	v.add(name, binary.BigEndian.AppendUint64(nil, uint64(x)))
}

// merge appends another view's fields under a prefix.
func (v *lagView) merge(prefix string, o *lagView) {
	for _, k := range o.order {
		v.add(prefix+k, o.fields[k])
	}
	v.lens = append(v.lens, o.lens...)
	if v.ring == nil {
		v.ring = o.ring
	}
}

// credential records an anonymous credential and its signature, as the
// LAG parses them.
func (v *lagView) credential(prefix string, sc Scheme, role Role, cred, sig []byte) {
	v.add(prefix+"scheme", []byte{byte(sc), byte(role)})
	switch sc {
	case SchemePseudonym:
		c, err := pseudonym.ParseCert(cred)
		if err != nil {
			v.add(prefix+"cred", cred)
			break
		}
		v.add("cert.serial", c.Serial[:])
		v.add("cert.group", []byte(c.Group))
		v.addInt("cert.notbefore", c.NotBefore)
		v.addInt("cert.notafter", c.NotAfter)
		v.add("cert.key", c.Key[:])
		v.add("cert.tracetag", c.TraceTag[:])
		v.add("cert.sig", c.Sig[:])
	case SchemeLSAG:
		rr, err := parseRingRef(cred)
		if err != nil {
			v.add(prefix+"cred", cred)
			break
		}
		v.add("ring", cred)
		v.ring = rr.Members
		if s, err := lsag.ParseSignature(sig, len(rr.Members)); err == nil {
			v.add("lsag.tag", s.Tag[:])
		}
	}
	v.add(prefix+"sig", sig)
}

func (v *lagView) permit(b []byte) {
	p, err := ParsePermit(b)
	if err != nil {
		v.add("permit", b)
		return
	}
	v.add("permit.binding", p.Binding[:])
	v.add("permit.attrs", []byte(fmt.Sprintf("%s %s %d %d %v %d", p.LAGID, p.Group, p.Scheme, p.Role, p.Home, p.Service)))
	v.addInt("permit.issued", p.IssuedAt)
	v.addInt("permit.notafter", p.NotAfter)
	v.add("permit.sig", p.Sig[:])
}

// ticket records a resumption ticket and what the LAG that sealed it reads
// in it.
func (v *lagView) ticket(l *LAG, t []byte, secret [32]byte) {
	if len(t) == 0 {
		return
	}
	v.add("ticket", t)
	v.add("ticket.secret", secret[:])
	if tp, err := l.openTicket(t); err == nil {
		v.add("ticket.origin", tp.Origin[:])
		v.addInt("ticket.issued", tp.IssuedAt)
		v.addInt("ticket.notafter", tp.NotAfter)
	}
}

// message records a message the LAG sent or received in the clear.
func (v *lagView) message(l *LAG, dir string, pt []byte) {
	m, err := parseAny(pt)
	if err != nil {
		v.add(dir+".unparsed", pt)
		return
	}
	v.add(fmt.Sprintf("%s.msg%02x", dir, m.kind()), pt)
	switch m := m.(type) {
	case *authReq:
		v.credential("auth.", m.Scheme, m.Role, m.Cred, m.Sig)
		v.add("auth.opkey", m.OpKey[:])
	case *verifyMsg:
		for _, e := range m.Entries {
			v.add("verify.binding", e.Binding[:])
			v.add("verify.challenge", e.Challenge[:])
			v.addInt("verify.epoch", e.Epoch)
			v.credential("verify.", e.Scheme, e.Role, e.Cred, e.Sig)
		}
	case *verdictsMsg:
		for _, d := range m.Verdicts {
			v.permit(d.Permit)
		}
	case *permitMsg:
		v.permit(m.Permit)
		v.ticket(l, m.Ticket, m.TicketSecret)
	case *resumeReq:
		v.ticket(l, m.Ticket, [32]byte{})
		v.add("resume.binder", m.Binder[:])
		v.add("resume.opkey", m.OpKey[:])
	case *resumedMsg:
		v.ticket(l, m.Ticket, m.TicketSecret)
	case *statusMsg:
		v.add("status.sealed", m.Sealed)
		v.add("status.sig", m.Sig)
	case *batchMsg:
		v.addInt("batch.time", m.Time)
		v.addInt("batch.count", int64(m.Count))
		v.add("batch.root", m.Root[:])
	}
}

// session is the raw material of one recorded session.
type session struct {
	lag, bv string
	hops    []hop    // every frame to or from the LAG while it ran
	plain   []string // per hop: the direction, if decrypted
	pts     [][]byte // per hop: the clear payload, if any
	events  []Event  // the LAG's events
	keep    *lagView // what the LAG keeps of the session
}

// recorder taps a test network: it clones each LAG's Noise cipher states
// as soon as they exist, so that it can read every frame the LAG reads or
// writes, and it collects the LAG's events.
type recorder struct {
	n     *testNet
	sess  map[string]*[2]noise.CipherState // "lag|bv" -> the LAG's (enc, dec)
	links map[string]*[2]noise.CipherState // lag -> its link's (enc, dec)
	cur   *session
}

func newRecorder(n *testNet) *recorder {
	r := &recorder{n: n, sess: map[string]*[2]noise.CipherState{}, links: map[string]*[2]noise.CipherState{}}
	n.tamper = r.tap
	n.lagEvents = func(node *lagNode, evs []Event) {
		if r.cur != nil && node.name == r.cur.lag {
			r.cur.events = append(r.cur.events, evs...)
		}
	}
	return r
}

// syncLinks clones every link's cipher states; call it when no frame is in
// flight, so that the clones decrypt the next frames in order.
func (r *recorder) syncLinks() {
	for name, node := range r.n.lags {
		if l := node.lag.link; l != nil && l.enc != nil {
			r.links[name] = &[2]noise.CipherState{*l.enc, *l.dec}
		}
	}
}

// openWith decrypts a data frame with a cloned cipher state.
func openWith(cs *noise.CipherState, frame []byte) ([]byte, error) {
	if len(frame) == 0 || frame[0] != frameData {
		return nil, fmt.Errorf("not a data frame")
	}
	return (&channel{enc: cs, dec: cs}).open(frame[1:])
}

func (r *recorder) tap(h hop) []byte {
	var pt []byte
	dir := ""
	lagName, peer := "", ""
	switch {
	case strings.HasPrefix(h.from, "lag:"):
		lagName, peer, dir = h.from[4:], h.to, "sent"
	case strings.HasPrefix(h.to, "lag:"):
		lagName, peer, dir = h.to[4:], h.from, "recv"
	}
	if lagName == "" {
		return h.data
	}
	node := r.n.lags[lagName]
	if peer == "ca" {
		if cs := r.links[lagName]; cs != nil && len(h.data) > 0 && h.data[0] == frameData {
			i := 0 // the LAG's sending state decrypts what it sent
			if dir == "recv" {
				i = 1
			}
			var err error
			if pt, err = openWith(&cs[i], h.data); err != nil {
				r.n.t.Fatalf("recorder lost the link of %s: %v", lagName, err)
			}
		}
	} else {
		key := lagName + "|" + strings.TrimPrefix(peer, "bv:")
		if dir == "sent" && len(h.data) > 0 && h.data[0] == frameHS2 {
			// The LAG just finished this session's handshake: clone its
			// fresh cipher states.
			for id, c := range node.bvs {
				if s := node.lag.sessions[id]; s != nil && "bv:"+c.name == peer && !c.closed && s.ch.enc != nil && s.ch.enc.Nonce() == 0 && s.ch.dec.Nonce() == 0 {
					r.sess[key] = &[2]noise.CipherState{*s.ch.enc, *s.ch.dec}
				}
			}
		}
		if cs := r.sess[key]; cs != nil && len(h.data) > 0 && h.data[0] == frameData {
			i := 0
			if dir == "recv" {
				i = 1
			}
			var err error
			if pt, err = openWith(&cs[i], h.data); err != nil {
				r.n.t.Fatalf("recorder lost session %s: %v", key, err)
			}
		}
	}
	if r.cur != nil && lagName == r.cur.lag {
		if peer != "ca" && strings.TrimPrefix(peer, "bv:") != r.cur.bv {
			return h.data
		}
		r.cur.hops = append(r.cur.hops, hop{h.from, h.to, slices.Clone(h.data)})
		r.cur.plain = append(r.cur.plain, dir)
		r.cur.pts = append(r.cur.pts, pt)
	}
	return h.data
}

// keep records what the LAG holds of a session, just before it ends.
func keep(c *bvConn) *lagView {
	v := newView()
	l := c.lag.lag
	s := l.sessions[c.id]
	if s == nil {
		return v
	}
	v.add("keep.choice", encode(&s.choice))
	v.add("keep.challenge", s.challenge[:])
	v.add("keep.binding", s.ch.binding[:])
	v.add("keep.opkey", s.opKey[:])
	if s.entry != nil {
		v.add("keep.entry", encode(&verifyMsg{Entries: []verifyEntry{*s.entry}}))
	}
	if s.permit != nil {
		v.add("keep.permit", s.permit.Marshal())
	}
	if s.cred != nil {
		v.add("keep.ref", s.cred.ref[:])
		if s.cred.cert != nil {
			v.add("keep.cert", s.cred.cert.Marshal())
		}
	}
	v.add("keep.origin", s.origin[:])
	for _, sv := range l.Sessions() {
		if sv.ID == c.id {
			b, _ := json.Marshal(sv)
			v.add("keep.sessionview", b)
			v.add("keep.credref", []byte(sv.CredentialRef))
		}
	}
	return v
}

// view turns a recorded session into the LAG's view.
func (r *recorder) view(s *session) *lagView {
	v := newView()
	node := r.n.lags[s.lag]
	for i, h := range s.hops {
		toCA := h.to == "ca" || h.from == "ca"
		name := "frame"
		if toCA {
			name = "link"
		} else {
			v.lens = append(v.lens, len(h.data))
		}
		v.add(fmt.Sprintf("%s.raw%d", name, h.data[0]), h.data)
		if s.pts[i] != nil {
			v.message(node.lag, s.plain[i], s.pts[i])
		}
	}
	for _, e := range s.events {
		v.add("event."+e.Kind, []byte(e.String()))
		if e.Evidence != nil {
			// What the LAG stores for the CA to trace (its evidence file).
			v.add("evidence", e.Evidence.Marshal())
			v.addInt("evidence.time", e.Evidence.Time)
		}
	}
	if s.keep != nil {
		v.merge("", s.keep)
	}
	return v
}

// unlinkCase is one population of vehicles and where their two sessions
// take place.
type unlinkCase struct {
	name     string
	scheme   Scheme
	vehicles int
	ring     int    // LSAG ring size
	first    string // LAG of the first session
	second   string // LAG of the second session
	gap      time.Duration
	// resume: before the first session each vehicle authenticates in full
	// at its home LAG (first), and the first session is a resumption with
	// the ticket; the home LAG's view is both.
	resume bool
	// leak makes the population leaky on purpose (sanity cases).
	leak func(t *testing.T, n *testNet, bvs []*BV, enrolled []time.Time)
	// reuse: each vehicle's second session offers the pseudonym of its
	// first (a leak, sanity case).
	reuse bool
}

// The day of the scenarios: every pseudonym is issued and used within it.
var day = time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC)

// cryptoPerm returns a random permutation of 0..n-1 from crypto/rand.
func cryptoPerm(t *testing.T, n int) []int {
	p := make([]int, n)
	for i := range p {
		p[i] = i
	}
	for i := n - 1; i > 0; i-- {
		j, err := rand.Int(rand.Reader, big.NewInt(int64(i+1)))
		if err != nil {
			t.Fatal(err)
		}
		p[i], p[j.Int64()] = p[j.Int64()], p[i]
	}
	return p
}

// population runs a case: vehicles enrol at different times of the
// morning, then in two rounds (each in a random order) every vehicle has a
// session at c.first, then one at c.second. It returns each vehicle's two
// views, the test network and the vehicles.
func population(t *testing.T, c unlinkCase) ([][2]*lagView, *testNet, []*BV) {
	t.Helper()
	n := newTestNet(t, CAConfig{})
	n.now = day.Add(20 * time.Minute)
	n.addLAG("home", "utility-a", LAGConfig{})
	n.addLAG("away", "utility-b", LAGConfig{})
	n.addLAG("away-2", "utility-b", LAGConfig{})
	advance := func(to time.Time) {
		if to.Before(n.now) {
			t.Fatalf("the scenario runs late: %v is past", to)
		}
		n.now = to
		for _, name := range sortedKeys(n.lags) {
			node := n.lags[name]
			n.lagOut(node, node.lag.Tick(n.now))
		}
		n.run()
	}
	bvs := make([]*BV, c.vehicles)
	enrolled := make([]time.Time, c.vehicles)
	for i := range bvs {
		// Vehicles enrol (or refill) whenever they like: spread them
		// over five hours.
		enrolled[i] = day.Add(time.Hour + time.Duration(i)*5*time.Hour/time.Duration(c.vehicles))
		advance(enrolled[i])
		bvs[i] = n.newBV(fmt.Sprintf("VIN-%04d", i), "utility-a", 4)
	}
	advance(day.Add(6*time.Hour + 30*time.Minute))
	for _, b := range bvs {
		if err := n.tryEnrol(b, 0, [32]byte{}); err != nil { // every vehicle gets the full group list
			t.Fatal(err)
		}
	}
	if c.leak != nil {
		c.leak(t, n, bvs, enrolled)
	}
	rec := newRecorder(n)
	rec.syncLinks()
	// Each vehicle has its own habits, the same in both of its sessions:
	// half of them agree to discharge, and each charged its own amount of
	// energy. The LAG must learn neither, so neither may link.
	run := func(i int, lag string) *lagView {
		b := bvs[i]
		rec.cur = &session{lag: lag, bv: b.RealID}
		opts := SessionOptions{Role: RoleStorage, Schemes: []Scheme{c.scheme}, RingSize: c.ring, Resume: c.resume, WillDischarge: i%2 == 0}
		conn := n.connect(b, lag, opts)
		if conn.s.State() == BVCharging {
			n.lagOut(conn.lag, conn.lag.lag.ConfirmBatch(n.now))
			n.run()
			n.act(conn, full(1000, int32(1000+37*i)))
			// A discharge request that only this session sees: the
			// vehicle answers, sealed to the CA.
			out, _, err := n.ca.RequestDischarge(n.now, lag, Centralized, 7000, 10*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			n.caOut(out)
			n.run()
			if conn.err != nil || len(conn.s.View().Acks) != 1 {
				t.Fatalf("%s at %s: discharge request not answered: %v %+v", b.RealID, lag, conn.err, conn.s.View())
			}
		}
		rec.cur.keep = keep(conn)
		if conn.s.State() != BVClosed && !conn.closed {
			n.bye(conn)
		}
		v := rec.view(rec.cur)
		rec.cur = nil
		n.now = n.now.Add(13 * time.Second)
		return v
	}
	views := make([][2]*lagView, c.vehicles)
	used := make([]*pseudoCred, c.vehicles)
	if c.resume {
		advance(day.Add(7 * time.Hour))
		for _, i := range cryptoPerm(t, c.vehicles) {
			views[i][0] = run(i, c.first)
			if !bvs[i].HasTicket(c.first) {
				t.Fatalf("%s got no ticket at %s", bvs[i].RealID, c.first)
			}
		}
	}
	advance(day.Add(8 * time.Hour))
	for _, i := range cryptoPerm(t, c.vehicles) {
		if c.reuse {
			used[i] = bvs[i].pseudo[0]
		}
		v := run(i, c.first)
		if views[i][0] != nil {
			// The home LAG links a resumption to its origin session (by
			// design): its view of the vehicle is both.
			both := newView()
			both.merge("origin.", views[i][0])
			both.merge("", v)
			v = both
		}
		views[i][0] = v
	}
	advance(day.Add(8*time.Hour + c.gap))
	for _, i := range cryptoPerm(t, c.vehicles) {
		if c.reuse {
			bvs[i].pseudo = append([]*pseudoCred{used[i]}, bvs[i].pseudo...)
		}
		views[i][1] = run(i, c.second)
	}
	return views, n, bvs
}

// distinguisher scores a pair of views: the higher, the more it believes
// they are one vehicle's.
type distinguisher struct {
	name  string
	score func(a, b *lagView) float64
}

func boolScore(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// windows8 is the set of 8-byte windows of b.
func windows8(b []byte) map[uint64]bool {
	w := make(map[uint64]bool, len(b))
	for i := 0; i+8 <= len(b); i++ {
		w[binary.BigEndian.Uint64(b[i:])] = true
	}
	return w
}

// distinguishers builds every distinguisher over the fields the views hold.
func distinguishers(views [][2]*lagView) []distinguisher {
	names := map[string]bool{}
	for _, p := range views {
		for _, v := range p {
			for k := range v.fields {
				names[k] = true
			}
		}
	}
	var ds []distinguisher
	for _, k := range slices.Sorted(func(yield func(string) bool) {
		for k := range names {
			if !yield(k) {
				return
			}
		}
	}) {
		ds = append(ds, distinguisher{"equal " + k, func(a, b *lagView) float64 {
			x, okA := a.fields[k]
			y, okB := b.fields[k]
			return boolScore(okA && okB && bytes.Equal(x, y))
		}})
		if strings.Contains(k, "notbefore") || strings.Contains(k, "notafter") || strings.Contains(k, "issued") || strings.Contains(k, "time") {
			ds = append(ds, distinguisher{"closeness of " + k, func(a, b *lagView) float64 {
				x, okA := a.fields[k]
				y, okB := b.fields[k]
				if !okA || !okB || len(x) != 8 || len(y) != 8 {
					return math.Inf(-1)
				}
				return -math.Abs(float64(int64(binary.BigEndian.Uint64(x)) - int64(binary.BigEndian.Uint64(y))))
			}})
		}
	}
	cache := map[*lagView]map[uint64]bool{}
	win := func(v *lagView) map[uint64]bool {
		if w, ok := cache[v]; ok {
			return w
		}
		w := windows8(v.blob)
		cache[v] = w
		return w
	}
	ds = append(ds,
		distinguisher{"shared 8-byte windows", func(a, b *lagView) float64 {
			wa, wb := win(a), win(b)
			k := 0
			for x := range wa {
				if wb[x] {
					k++
				}
			}
			return float64(k)
		}},
		distinguisher{"any equal field", func(a, b *lagView) float64 {
			k := 0
			for name, x := range a.fields {
				if y, ok := b.fields[name]; ok && bytes.Equal(x, y) {
					k++
				}
			}
			return float64(k)
		}},
		distinguisher{"equal frame lengths", func(a, b *lagView) float64 { return boolScore(slices.Equal(a.lens, b.lens)) }},
		distinguisher{"frame length distance", func(a, b *lagView) float64 {
			d := 0
			for i := range max(len(a.lens), len(b.lens)) {
				x, y := 0, 0
				if i < len(a.lens) {
					x = a.lens[i]
				}
				if i < len(b.lens) {
					y = b.lens[i]
				}
				d += max(x-y, y-x)
			}
			return -float64(d)
		}},
		distinguisher{"ring overlap", func(a, b *lagView) float64 {
			k := 0
			for _, m := range a.ring {
				if _, ok := slices.BinarySearch(b.ring, m); ok {
					k++
				}
			}
			return float64(k)
		}},
	)
	return ds
}

// rankZ is the Mann-Whitney statistic of x against y, normalised (with the
// correction for ties): about N(0, 1) when both come from one
// distribution, large and positive when x tends to be larger.
func rankZ(x, y []float64) float64 {
	type obs struct {
		v float64
		x bool
	}
	all := make([]obs, 0, len(x)+len(y))
	for _, v := range x {
		all = append(all, obs{v, true})
	}
	for _, v := range y {
		all = append(all, obs{v, false})
	}
	sort.Slice(all, func(i, j int) bool { return all[i].v < all[j].v })
	n1, n2 := float64(len(x)), float64(len(y))
	n := n1 + n2
	var r1, ties float64
	for i := 0; i < len(all); {
		j := i
		for j < len(all) && all[j].v == all[i].v {
			j++
		}
		rank := float64(i+j+1) / 2 // ranks i+1..j, averaged
		for k := i; k < j; k++ {
			if all[k].x {
				r1 += rank
			}
		}
		t := float64(j - i)
		ties += t*t*t - t
		i = j
	}
	u := r1 - n1*(n1+1)/2
	v := n1 * n2 / 12 * ((n + 1) - ties/(n*(n-1)))
	if v <= 0 {
		return 0
	}
	return (u - n1*n2/2) / math.Sqrt(v)
}

// linkResult is one distinguisher's outcome.
type linkResult struct {
	name       string
	pairs      int // of each kind
	z          float64
	same, diff float64 // mean scores
}

// pairUp returns each vehicle's partner in the different pairs: the next
// vehicle of its anonymity class (class[i] names it), cyclically.
func pairUp(class []int) []int {
	partner := make([]int, len(class))
	byClass := map[int][]int{}
	for i, c := range class {
		byClass[c] = append(byClass[c], i)
	}
	for _, members := range byClass {
		for k, i := range members {
			partner[i] = members[(k+1)%len(members)]
		}
	}
	return partner
}

// linkability scores every distinguisher on same pairs (a vehicle's two
// sessions) against different pairs (a vehicle's first session and its
// partner's second).
func linkability(views [][2]*lagView, partner []int) []linkResult {
	var out []linkResult
	for _, d := range distinguishers(views) {
		var same, diff []float64
		for i, p := range views {
			if partner[i] == i {
				continue // alone in its class
			}
			same = append(same, d.score(p[0], p[1]))
			diff = append(diff, d.score(p[0], views[partner[i]][1]))
		}
		out = append(out, linkResult{d.name, len(same), rankZ(same, diff), mean(same), mean(diff)})
	}
	return out
}

func mean(x []float64) float64 {
	s := 0.0
	for _, v := range x {
		if math.IsInf(v, -1) {
			return math.Inf(-1)
		}
		s += v
	}
	return s / float64(len(x))
}

// requireUnlinkable fails for every distinguisher that links.
func requireUnlinkable(t *testing.T, res []linkResult) {
	t.Helper()
	worst := linkResult{}
	for _, r := range res {
		if r.pairs < 20 || math.IsNaN(r.z) {
			t.Fatalf("%s: %d pairs of each kind, z = %v: too few to tell", r.name, r.pairs, r.z)
		}
		if math.Abs(r.z) > zMax {
			t.Errorf("%s links sessions: same-vehicle pairs score %.3f, different-vehicle pairs %.3f (z = %.1f)", r.name, r.same, r.diff, r.z)
		}
		if math.Abs(r.z) >= math.Abs(worst.z) {
			worst = r
		}
	}
	t.Logf("%d distinguishers; the best, %q, reaches z = %.2f (same %.3f, different %.3f)", len(res), worst.name, worst.z, worst.same, worst.diff)
}

// requireLinkedBy fails unless each named distinguisher links sessions:
// proof that the test can fail.
func requireLinkedBy(t *testing.T, res []linkResult, names ...string) {
	t.Helper()
	for _, name := range names {
		found := false
		for _, r := range res {
			if r.name == name {
				found = true
				if !(r.z > zMax) || r.pairs < 20 {
					t.Errorf("%s misses a real link: same %.3f, different %.3f, z = %.1f over %d pairs", name, r.same, r.diff, r.z, r.pairs)
				} else {
					t.Logf("%s catches the link: same %.3f, different %.3f, z = %.1f", name, r.same, r.diff, r.z)
				}
			}
		}
		if !found {
			t.Errorf("no distinguisher %q", name)
		}
	}
}

// ringClass puts vehicles whose first session used the same ring in one
// class: LSAG's anonymity set is the ring.
func ringClass(views [][2]*lagView) []int {
	class := make([]int, len(views))
	ids := map[string]int{}
	for i, p := range views {
		k := fmt.Sprint(p[0].ring)
		if _, ok := ids[k]; !ok {
			ids[k] = len(ids)
		}
		class[i] = ids[k]
	}
	return class
}

// TestUnlinkablePseudonyms: sessions with pseudonym certificates, at one
// visiting LAG; at the home LAG (full authentication) then a visiting
// LAG; and a home resumption then a visiting LAG (home and visiting must
// not link, though the home LAG links a resumption to its origin).
func TestUnlinkablePseudonyms(t *testing.T) {
	for _, c := range []unlinkCase{
		{name: "same visiting LAG", scheme: SchemePseudonym, vehicles: 100, first: "away", second: "away", gap: time.Hour},
		{name: "home then visiting", scheme: SchemePseudonym, vehicles: 100, first: "home", second: "away", gap: time.Hour},
		{name: "home resumption then visiting", scheme: SchemePseudonym, vehicles: 100, first: "home", second: "away", gap: time.Hour, resume: true},
	} {
		t.Run(c.name, func(t *testing.T) {
			views, _, _ := population(t, c)
			if c.resume {
				for i, p := range views {
					if !bytes.Equal(p[0].fields["ticket.origin"], p[0].fields["origin.keep.binding"]) {
						t.Fatalf("vehicle %d: the resumption does not name its origin session (expected linkability at home)", i)
					}
				}
			}
			res := linkability(views, pairUp(make([]int, len(views))))
			requireUnlinkable(t, res)
		})
	}
}

// TestUnlinkableLSAG: LSAG sessions in different epochs at one LAG, and at
// two LAGs in one epoch, are unlinkable among the vehicles of the ring;
// two sessions at one LAG within one epoch are linked by their tag, which
// is how the LAG and the CA catch a credential used twice.
func TestUnlinkableLSAG(t *testing.T) {
	for _, c := range []unlinkCase{
		{name: "one LAG, two epochs", scheme: SchemeLSAG, vehicles: 48, ring: 8, first: "away", second: "away", gap: 2 * time.Hour},
		{name: "two LAGs, one epoch", scheme: SchemeLSAG, vehicles: 48, ring: 8, first: "away", second: "away-2", gap: 20 * time.Minute},
		{name: "home then visiting", scheme: SchemeLSAG, vehicles: 48, ring: 8, first: "home", second: "away", gap: 20 * time.Minute},
	} {
		t.Run(c.name, func(t *testing.T) {
			views, _, _ := population(t, c)
			requireUnlinkable(t, linkability(views, pairUp(ringClass(views))))
		})
	}
	t.Run("one LAG, one epoch: linked", func(t *testing.T) {
		views, _, _ := population(t, unlinkCase{scheme: SchemeLSAG, vehicles: 24, ring: 8, first: "away", second: "away", gap: 20 * time.Minute})
		for i, p := range views {
			if !bytes.Equal(p[0].fields["lsag.tag"], p[1].fields["lsag.tag"]) {
				t.Fatalf("vehicle %d: two sessions at one LAG in one epoch show different link tags", i)
			}
		}
		requireLinkedBy(t, linkability(views, pairUp(ringClass(views))), "equal lsag.tag", "equal keep.credref")
	})
}

// TestUnlinkabilityCatchesLeaks: the distinguishers find real links, so
// TestUnlinkablePseudonyms and TestUnlinkableLSAG can fail.
func TestUnlinkabilityCatchesLeaks(t *testing.T) {
	t.Run("pseudonym reused", func(t *testing.T) {
		views, _, _ := population(t, unlinkCase{scheme: SchemePseudonym, vehicles: 40, first: "away", second: "away", gap: time.Hour, reuse: true})
		requireLinkedBy(t, linkability(views, pairUp(make([]int, len(views)))), "equal cert.serial", "equal cert.key", "shared 8-byte windows")
	})
	t.Run("validity window from the enrolment time", func(t *testing.T) {
		// The CA used to certify pseudonyms from the moment of enrolment:
		// every pseudonym of one vehicle then carried its enrolment time.
		leak := func(t *testing.T, n *testNet, bvs []*BV, enrolled []time.Time) {
			tr, err := n.ca.pub.trace()
			if err != nil {
				t.Fatal(err)
			}
			for i, b := range bvs {
				for k := range b.pseudo {
					_, key, _ := ed25519.GenerateKey(rand.Reader)
					cert, err := pseudonym.Issue(n.keys.Sign, tr, b.RealID, b.Group, key.Public().(ed25519.PublicKey), enrolled[i].Add(-time.Minute), enrolled[i].Add(24*time.Hour))
					if err != nil {
						t.Fatal(err)
					}
					n.ca.serials[cert.Serial] = &serialInfo{bv: n.ca.byReal[b.RealID], notAfter: cert.NotAfter}
					b.pseudo[k] = &pseudoCred{cert: cert, key: key}
				}
			}
		}
		views, _, _ := population(t, unlinkCase{scheme: SchemePseudonym, vehicles: 40, first: "away", second: "away", gap: time.Hour, leak: leak})
		requireLinkedBy(t, linkability(views, pairUp(make([]int, len(views)))), "equal cert.notbefore", "closeness of cert.notafter")
	})
	t.Run("LSAG rings drawn per scope", func(t *testing.T) {
		// Vehicles used to draw a fresh ring for every LAG and epoch: the
		// rings of one vehicle always share it, those of two vehicles
		// share less. Rings drawn that way, for 200 vehicles of a group of
		// 64 with rings of 8, at two scopes:
		var views [][2]*lagView
		const group, ring = 64, 8
		draw := func(i int, scope string) []uint32 {
			var others []uint32
			for j := range group {
				if j != i {
					others = append(others, uint32(j))
				}
			}
			for k := len(others) - 1; k > 0; k-- {
				j, _ := rand.Int(rand.Reader, big.NewInt(int64(k+1)))
				others[k], others[j.Int64()] = others[j.Int64()], others[k]
			}
			m := append(others[:ring-1], uint32(i))
			slices.Sort(m)
			return m
		}
		for i := range 200 {
			views = append(views, [2]*lagView{{ring: draw(i%group, "a")}, {ring: draw(i%group, "b")}})
		}
		partner := make([]int, len(views))
		for i := range views {
			partner[i] = (i + 1) % len(views)
		}
		var res []linkResult
		for _, r := range linkability(views, partner) {
			if r.name == "ring overlap" {
				res = append(res, r)
			}
		}
		requireLinkedBy(t, res, "ring overlap")
	})
}

// TestRingBuckets: rings are fixed buckets of the group list, the last
// partial bucket joined to the one before, revoked members left out.
func TestRingBuckets(t *testing.T) {
	none := func(uint32) bool { return false }
	span := func(lo, hi uint32) []uint32 {
		var m []uint32
		for i := lo; i < hi; i++ {
			m = append(m, i)
		}
		return m
	}
	for _, c := range []struct {
		n, i, size int
		revoked    func(uint32) bool
		want       []uint32
	}{
		{20, 3, 8, none, span(0, 8)},
		{20, 9, 8, none, span(8, 20)},  // the last full bucket takes the partial one
		{20, 18, 8, none, span(8, 20)}, // and so does its member
		{16, 15, 8, none, span(8, 16)}, // no partial bucket
		{5, 4, 8, none, span(0, 5)},    // a group smaller than a ring
		{1, 0, 8, none, []uint32{0}},   // a ring of one: the vehicle refuses it (MinRingSize)
		{20, 2, 8, func(m uint32) bool { return m == 5 }, []uint32{0, 1, 2, 3, 4, 6, 7}},
		{300, 299, 200, none, span(200, 300)}, // joining would pass MaxRingSize
	} {
		rev := c.revoked
		if got := bucket(c.n, c.i, c.size, rev); !slices.Equal(got, c.want) {
			t.Errorf("bucket(%d, %d, %d) = %v, want %v", c.n, c.i, c.size, got, c.want)
		}
	}
}

// answerViews runs one session per vehicle at one LAG: half of the
// vehicles agree to discharge, half decline, each with its own battery
// values, and returns the LAG's whole view of each (agreeing vehicles
// first). With stop, the vehicles that agreed also report leaving the
// discharging state, which a decliner never does (a leak by traffic, for
// the sanity case).
func answerViews(t *testing.T, perSide int, stop bool) (agree, decline []*lagView, secrets map[*lagView][][]byte) {
	t.Helper()
	n := newTestNet(t, CAConfig{})
	n.now = day.Add(20 * time.Minute)
	n.addLAG("home", "utility-a", LAGConfig{})
	var bvs []*BV
	for i := range 2 * perSide {
		bvs = append(bvs, n.newBV(fmt.Sprintf("VIN-%04d", i), "utility-a", 1))
	}
	rec := newRecorder(n)
	rec.syncLinks()
	secrets = map[*lagView][][]byte{}
	for _, i := range cryptoPerm(t, len(bvs)) {
		b := bvs[i]
		yes := i < perSide
		// Battery values with no zero bytes in their encodings: a value
		// like 0x5EC00000 (and its -wh/4, 0xE8500000) shares its trailing
		// zeros with the nanosecond timestamps the LAG keeps, and matched
		// one of them by chance in about a third of the runs.
		soc, wh := uint16(900+i), int32(0x5EC13579+i*7919)
		own := append([][]byte(nil), binary.BigEndian.AppendUint32(nil, uint32(wh)), binary.LittleEndian.AppendUint32(nil, uint32(wh)),
			binary.BigEndian.AppendUint32(nil, uint32(-wh/4)), binary.LittleEndian.AppendUint32(nil, uint32(-wh/4)),
			[]byte(fmt.Sprint(wh)), []byte(fmt.Sprintf(" %d.%d%%", soc/10, soc%10)))
		rec.cur = &session{lag: "home", bv: b.RealID}
		c := n.connect(b, "home", SessionOptions{Role: RoleStorage, Schemes: []Scheme{SchemePseudonym}, WillDischarge: yes})
		n.mustCharging(c)
		n.act(c, full(soc, wh))
		out, _, err := n.ca.RequestDischarge(n.now, "home", Centralized, 7000, 10*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		n.caOut(out)
		n.run()
		if len(c.s.View().Acks) != 1 || (c.s.State() == BVDischarging) != yes {
			t.Fatalf("%s: state %s, view %+v, %v", b.RealID, c.s.State(), c.s.View(), c.err)
		}
		if stop && yes {
			n.act(c, func(s *BVSession) ([]byte, error) {
				return s.ReportStatus(StatusStopDischarg, Battery{SOCPermille: soc - 100, EnergyWh: -wh / 4})
			})
		}
		rec.cur.keep = keep(c)
		n.bye(c)
		v := rec.view(rec.cur)
		rec.cur = nil
		secrets[v] = own
		if yes {
			agree = append(agree, v)
		} else {
			decline = append(decline, v)
		}
		n.now = n.now.Add(13 * time.Second)
	}
	return agree, decline, secrets
}

// shapeTest compares every size in the views of two classes (each frame's
// length, each field's length, how many fields) with the rank test and
// returns the largest |z| and what it was about.
func shapeTest(a, b []*lagView) (float64, string) {
	feats := func(v *lagView) map[string]float64 {
		f := map[string]float64{"fields": float64(len(v.order)), "frames": float64(len(v.lens))}
		for i, l := range v.lens {
			f[fmt.Sprintf("frame %d", i)] = float64(l)
		}
		for k, x := range v.fields {
			f["length of "+k] = float64(len(x))
		}
		return f
	}
	keys := map[string]bool{}
	var fa, fb []map[string]float64
	for _, v := range a {
		fa = append(fa, feats(v))
	}
	for _, v := range b {
		fb = append(fb, feats(v))
	}
	for _, f := range append(slices.Clone(fa), fb...) {
		for k := range f {
			keys[k] = true
		}
	}
	worst, what := 0.0, ""
	for k := range keys {
		col := func(fs []map[string]float64) []float64 {
			var out []float64
			for _, f := range fs {
				x, ok := f[k]
				if !ok {
					x = -1
				}
				out = append(out, x)
			}
			return out
		}
		if z := math.Abs(rankZ(col(fa), col(fb))); z > worst {
			worst, what = z, k
		}
	}
	return worst, what
}

// TestLAGViewHidesAnswerAndBattery: on the LAG's whole view (every frame
// in the clear, everything it keeps, its log), a vehicle that agrees to
// discharge looks like one that declines, and no battery value appears.
// The sanity case shows the comparison catches a difference: agreeing
// vehicles that then report leaving the discharging state (traffic the
// LAG sees, out of the design's scope) are told apart.
func TestLAGViewHidesAnswerAndBattery(t *testing.T) {
	agree, decline, secrets := answerViews(t, 30, false)
	// Each session's view is searched for that vehicle's own battery
	// values. A 4-byte value also turns up by chance in the view's random
	// bytes (keys, signatures, ciphertext: about one session in 2,500), so
	// a leak must show in two sessions or more; a real one shows in all.
	leaked := 0
	for _, v := range append(slices.Clone(agree), decline...) {
		for _, s := range secrets[v] {
			if bytes.Contains(v.blob, s) {
				leaked++
				t.Logf("a battery value (% x) is in its session's LAG view", s)
				break
			}
		}
	}
	if leaked >= 2 {
		t.Fatalf("battery values are in the LAG's view of %d of %d sessions", leaked, len(agree)+len(decline))
	}
	if z, what := shapeTest(agree, decline); z > zMax {
		t.Fatalf("the LAG tells Agree from Decline by the %s (z = %.1f)", what, z)
	} else {
		t.Logf("Agree against Decline: the largest difference, in the %s, has z = %.2f", what, z)
	}
	agree, decline, _ = answerViews(t, 30, true)
	if z, what := shapeTest(agree, decline); z <= zMax {
		t.Fatalf("the comparison misses the extra status of agreeing vehicles (largest z = %.1f, %s)", z, what)
	} else {
		t.Logf("sanity: agreeing vehicles that report leaving discharge are told apart by the %s (z = %.1f)", what, z)
	}
}
