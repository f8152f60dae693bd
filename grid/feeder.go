package grid

import (
	"errors"
	"fmt"
	"math"
)

// Bus is one node of a radial feeder together with the line that feeds it
// from its parent. The slack bus has Parent -1 and no line.
type Bus struct {
	Name   string
	Parent int     // index of the parent bus; -1 for the slack bus
	R, X   float64 // series resistance and reactance of the line from the parent, pu
}

// Feeder is a radial distribution feeder. Buses are in topological order:
// bus 0 is the slack bus and every other bus comes after its parent, which is
// what lets the tree products run in one pass each way.
type Feeder struct {
	Name  string
	V0    float64 // slack bus voltage, pu
	SBase float64 // base power, kVA
	Buses []Bus
}

// ErrInvalidFeeder is wrapped by every error Validate returns.
var ErrInvalidFeeder = errors.New("invalid feeder")

// Validate checks that f is a radial feeder in topological order with
// physically meaningful parameters.
func (f *Feeder) Validate() error {
	if len(f.Buses) < 2 {
		return fmt.Errorf("%w %q: needs a slack bus and at least one load bus, has %d buses", ErrInvalidFeeder, f.Name, len(f.Buses))
	}
	if !(f.V0 > 0.5 && f.V0 < 1.5) {
		return fmt.Errorf("%w %q: slack voltage v0 = %v pu is outside (0.5, 1.5); give v0 in per unit", ErrInvalidFeeder, f.Name, f.V0)
	}
	if !(f.SBase > 0) || math.IsInf(f.SBase, 0) {
		return fmt.Errorf("%w %q: base power %v kVA must be positive", ErrInvalidFeeder, f.Name, f.SBase)
	}
	if f.Buses[0].Parent != -1 {
		return fmt.Errorf("%w %q: bus 0 (%s) must be the slack bus with parent -1", ErrInvalidFeeder, f.Name, f.Buses[0].Name)
	}
	seen := make(map[string]int, len(f.Buses))
	for i, b := range f.Buses {
		if b.Name == "" {
			return fmt.Errorf("%w %q: bus %d has no name", ErrInvalidFeeder, f.Name, i)
		}
		if j, dup := seen[b.Name]; dup {
			return fmt.Errorf("%w %q: bus name %q used twice (buses %d and %d)", ErrInvalidFeeder, f.Name, b.Name, j, i)
		}
		seen[b.Name] = i
		if i == 0 {
			continue
		}
		if b.Parent < 0 || b.Parent >= i {
			return fmt.Errorf("%w %q: bus %q has parent index %d; parents must come before their children (0 <= parent < %d)", ErrInvalidFeeder, f.Name, b.Name, b.Parent, i)
		}
		if !(b.R >= 0) || !(b.X >= 0) || math.IsInf(b.R, 0) || math.IsInf(b.X, 0) {
			return fmt.Errorf("%w %q: line to bus %q has r = %v, x = %v pu; both must be finite and >= 0", ErrInvalidFeeder, f.Name, b.Name, b.R, b.X)
		}
	}
	return nil
}

// BusIndex returns the index of the bus called name, or -1.
func (f *Feeder) BusIndex(name string) int {
	for i, b := range f.Buses {
		if b.Name == name {
			return i
		}
	}
	return -1
}

// MulR sets out = R w, where R is the feeder's path-resistance matrix
// (R_jk = resistance common to the slack-to-j and slack-to-k paths) restricted
// to the buses, and w holds one value per bus (w[0], the slack, is ignored).
// It runs in O(buses): flows are summed up the tree, then r*flow accumulated
// down it. out and w may not alias.
func (f *Feeder) MulR(w, out []float64) { f.mulLine(w, out, false) }

// MulX is MulR for the reactance matrix X.
func (f *Feeder) MulX(w, out []float64) { f.mulLine(w, out, true) }

func (f *Feeder) mulLine(w, out []float64, reactance bool) {
	n := len(f.Buses)
	// out first holds the downstream sum of w below each bus (the flow on
	// the line into that bus), then is overwritten root-first by the drop.
	copy(out[:n], w[:n])
	out[0] = 0
	for i := n - 1; i > 0; i-- {
		out[f.Buses[i].Parent] += out[i]
	}
	out[0] = 0
	for i := 1; i < n; i++ {
		b := &f.Buses[i]
		z := b.R
		if reactance {
			z = b.X
		}
		out[i] = out[b.Parent] + z*out[i]
	}
}

// VoltageSquared sets v2[j] to the LinDistFlow squared voltage of every bus
// for one slot, given net active load p (kW) and reactive load q (kvar) per
// bus. scratch must hold len(f.Buses) values.
func (f *Feeder) VoltageSquared(p, q, v2, scratch []float64) {
	n := len(f.Buses)
	f.MulR(p, v2)
	f.MulX(q, scratch)
	c := 2 / f.SBase
	v02 := f.V0 * f.V0
	for i := 0; i < n; i++ {
		v2[i] = v02 - c*(v2[i]+scratch[i])
	}
}

// PathResistance returns the dense matrix R (buses x buses, pu) of path
// resistances. It costs O(buses^2) and is meant for tests and small feeders.
func (f *Feeder) PathResistance() [][]float64 {
	n := len(f.Buses)
	path := make([][]bool, n) // path[j][i]: line into bus i lies on the path to j
	for j := 0; j < n; j++ {
		path[j] = make([]bool, n)
		for k := j; k > 0; k = f.Buses[k].Parent {
			path[j][k] = true
		}
	}
	r := make([][]float64, n)
	for j := 0; j < n; j++ {
		r[j] = make([]float64, n)
		for k := 0; k < n; k++ {
			for i := 1; i < n; i++ {
				if path[j][i] && path[k][i] {
					r[j][k] += f.Buses[i].R
				}
			}
		}
	}
	return r
}
