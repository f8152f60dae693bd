package sim

import (
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"time"

	"github.com/flynn/noise"

	"github.com/gridveil/gridveil/auth"
)

// authDay is the day's authentication network in one process: one CA, a
// LAG per station (feeder and bus) and a session per vehicle, every frame
// passed between the real cores of package auth (CA, LAG, BVSession) as
// the services would pass it over their connections. It holds no
// protocol logic of its own: it only routes frames, in order, until no
// party has anything left to send.
type authDay struct {
	ca    *auth.CA
	keys  *auth.CAKeys
	now   time.Time
	lags  map[string]*authLAG
	order []*authLAG               // in creation order, so that flushes run in a fixed order
	links map[auth.ConnID]*authLAG // the CA's side of each LAG link
	queue []func()
	// errs are the failures the parties reported; the day refuses to go
	// on with any (a vehicle that cannot authenticate is a bug here, not
	// an input the simulation should tolerate).
	errs []error
}

type authLAG struct {
	id   string
	lag  *auth.LAG
	link auth.ConnID
	bvs  map[auth.ConnID]*authBV
}

type authBV struct {
	name string
	s    *auth.BVSession
	node *authLAG
	id   auth.ConnID
	err  error
}

const authGroup = "utility-a"

// newAuthDay starts a CA at the simulated clock now. aggregateMin is the
// fewest answers an aggregate the CA releases to a LAG may cover.
func newAuthDay(now time.Time, aggregateMin int) (*authDay, error) {
	keys, err := auth.GenerateCAKeys()
	if err != nil {
		return nil, err
	}
	ca, err := auth.NewCA(keys, auth.CAConfig{AggregateMin: aggregateMin})
	if err != nil {
		return nil, err
	}
	return &authDay{ca: ca, keys: keys, now: now, lags: map[string]*authLAG{}, links: map[auth.ConnID]*authLAG{}}, nil
}

// addLAG certifies a LAG and links it to the CA.
func (n *authDay) addLAG(id string) (*authLAG, error) {
	nk, err := noise.DH25519.GenerateKeypair(rand.Reader)
	if err != nil {
		return nil, err
	}
	pub, sk, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	cert, err := n.ca.IssueLAGCert(n.now, id, authGroup, [32]byte(nk.Public), [32]byte(pub))
	if err != nil {
		return nil, err
	}
	var tk [32]byte
	if _, err := rand.Read(tk[:]); err != nil {
		return nil, err
	}
	l, err := auth.NewLAG(auth.LAGConfig{Cert: *cert, NoiseKey: nk, SignKey: sk, CA: n.ca.Public(), TicketKey: tk}, n.now)
	if err != nil {
		return nil, err
	}
	node := &authLAG{id: id, lag: l, bvs: map[auth.ConnID]*authBV{}}
	n.lags[id] = node
	n.order = append(n.order, node)
	first, err := l.ConnectCA()
	if err != nil {
		return nil, err
	}
	node.link = n.ca.Open()
	n.links[node.link] = node
	n.toCA(node, first)
	if err := n.run(); err != nil {
		return nil, err
	}
	if !l.Linked() {
		return nil, fmt.Errorf("LAG %s did not link to the CA", id)
	}
	return node, nil
}

// enrol registers a vehicle with the CA and gets it one pseudonym.
func (n *authDay) enrol(b *auth.BV) error {
	// Per-identity admission: the CA's operator issues each vehicle its
	// own enrolment credential, which the first enrolment uses up.
	cred, _, err := n.ca.IssueCredential(n.now, auth.CredentialVehicle, b.RealID)
	if err != nil {
		return fmt.Errorf("issuing %s's enrolment credential: %w", b.RealID, err)
	}
	e, frame, err := b.Enrol(cred, 1)
	if err != nil {
		return err
	}
	id := n.ca.Open()
	defer n.ca.Close(id)
	for frame != nil {
		out, err := n.ca.Receive(n.now, id, frame)
		if err != nil {
			return fmt.Errorf("enrolling %s: %w", b.RealID, err)
		}
		frame = nil
		var rest auth.Output
		for _, f := range out.Frames {
			if f.To != id {
				rest.Frames = append(rest.Frames, f)
				continue
			}
			nf, err := e.Receive(f.Data)
			if err != nil {
				return fmt.Errorf("enrolling %s: %w", b.RealID, err)
			}
			if nf != nil {
				frame = nf
			}
		}
		n.caOut(rest) // group list pushes to the linked LAGs
		if err := n.run(); err != nil {
			return err
		}
	}
	if !e.Done() {
		return fmt.Errorf("enrolling %s: the CA did not finish the enrolment", b.RealID)
	}
	return nil
}

// connect opens a session of b at node with opts and runs it as far as it
// goes (for an honest vehicle: charging, with the CA's permit).
func (n *authDay) connect(b *auth.BV, node *authLAG, opts auth.SessionOptions) (*authBV, error) {
	c := &authBV{name: b.RealID, s: b.NewSession(opts), node: node}
	id, out, err := node.lag.Open(n.now)
	if err != nil {
		return nil, err
	}
	c.id = id
	node.bvs[id] = c
	n.lagOut(node, out)
	return c, n.run()
}

// act sends what a vehicle action produced and runs the network.
func (n *authDay) act(c *authBV, frames ...[]byte) error {
	for _, f := range frames {
		n.fromBV(c, f)
	}
	if err := n.run(); err != nil {
		return err
	}
	if c.err != nil {
		return fmt.Errorf("vehicle %s: %w", c.name, c.err)
	}
	return nil
}

func (n *authDay) toCA(node *authLAG, b []byte) {
	n.queue = append(n.queue, func() {
		out, err := n.ca.Receive(n.now, node.link, b)
		if err != nil {
			n.errs = append(n.errs, fmt.Errorf("CA, link of %s: %w", node.id, err))
		}
		n.caOut(out)
	})
}

func (n *authDay) caOut(out auth.Output) {
	n.events(out.Events, "CA")
	for _, f := range out.Frames {
		node := n.links[f.To]
		if node == nil {
			continue
		}
		data := f.Data
		n.queue = append(n.queue, func() {
			o, err := node.lag.ReceiveCA(n.now, data)
			if err != nil {
				n.errs = append(n.errs, fmt.Errorf("LAG %s, CA link: %w", node.id, err))
			}
			n.lagOut(node, o)
		})
	}
}

func (n *authDay) lagOut(node *authLAG, out auth.Output) {
	n.events(out.Events, "LAG "+node.id)
	for _, f := range out.Frames {
		if f.To == auth.ToCA {
			n.toCA(node, f.Data)
			continue
		}
		c := node.bvs[f.To]
		if c == nil {
			continue
		}
		data := f.Data
		n.queue = append(n.queue, func() {
			if c.err != nil {
				return
			}
			frames, err := c.s.Receive(n.now, data)
			if err != nil {
				c.err = err
				return
			}
			for _, f := range frames {
				n.fromBV(c, f)
			}
		})
	}
}

func (n *authDay) fromBV(c *authBV, f []byte) {
	n.queue = append(n.queue, func() {
		out, _ := c.node.lag.Receive(n.now, c.id, f) // a refusal is an event of out
		n.lagOut(c.node, out)
	})
}

// events keeps the parties' failures.
func (n *authDay) events(evs []auth.Event, who string) {
	for _, e := range evs {
		if e.Err != nil {
			n.errs = append(n.errs, fmt.Errorf("%s, %s: %w", who, e.Kind, e.Err))
		}
	}
}

// run handles queued frames until none are left, flushing the LAGs'
// gathered authentication requests whenever the network is idle.
func (n *authDay) run() error {
	for {
		for len(n.queue) > 0 {
			f := n.queue[0]
			n.queue = n.queue[1:]
			f()
		}
		flushed := false
		for _, node := range n.order {
			if node.lag.Pending() > 0 {
				n.lagOut(node, node.lag.Flush(n.now))
				flushed = true
			}
		}
		if !flushed {
			break
		}
	}
	if len(n.errs) > 0 {
		return fmt.Errorf("authentication: %w", errors.Join(n.errs...))
	}
	return nil
}
