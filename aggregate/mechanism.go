package aggregate

import (
	"github.com/gridveil/gridveil/charging"
)

// Mechanism is a private aggregation scheme between the vehicles of each bus
// and the system operator. It is a charging.Aggregator: in every iteration
// it turns the true schedules of a bus's vehicles into the messages they
// send (simulating each vehicle's side) and recovers the SO's view of their
// sum (simulating the SO's side).
type Mechanism interface {
	charging.Aggregator
	// Name is the mechanism's name on the command line and in files.
	Name() string
	// Params lists the parameters for the record.
	Params() map[string]float64
	// ReportBytes is what one vehicle sends per iteration for a horizon of
	// slots slots, counting payload only (no transport framing).
	ReportBytes(slots int) int
	// Exact reports whether the SO's sums are exact up to fixed-point
	// rounding, so that the solver can converge to the optimum.
	Exact() bool
	// View returns what the SO received from every vehicle in the last
	// iteration, when recording was switched on; nil otherwise.
	View() *View
}

// View is what the SO received from each vehicle in one iteration, in the
// form the mechanism sends it, plus what the SO legitimately knows. It is
// what an attacker on the SO's side works from, and what
// `gridveil sim --dump-view so` writes.
type View struct {
	Mechanism string             `json:"mechanism"`
	Iteration int                `json:"iteration"`
	Slots     int                `json:"slots"`
	Params    map[string]float64 `json:"params"`
	// Reports maps a vehicle's index to its messages: rows of Slots values.
	// none, dp: one row of kW; obfuscation: m rows of kW; masking: one row
	// of Z_2^64 fixed-point words; shamir: one row of GF(P) shares (the
	// shareholder the SO runs).
	Reports map[int][][]float64 `json:"-"`
	Words   map[int][][]uint64  `json:"-"`
	// Masking only, by vehicle: its mask public key (relayed by the LAG);
	// the self-mask seed the SO reconstructed from the others' shares; and
	// the correction it sent, its masks of this iteration with vehicles
	// that dropped out; and whether the SO's bus sum counts its report. A
	// vehicle with a key and no words is one whose report was lost.
	PublicKeys  map[int][]byte   `json:"-"`
	Seeds       map[int][]byte   `json:"-"`
	Corrections map[int][]uint64 `json:"-"`
	InSum       map[int]bool     `json:"-"`
	// Known is what the SO knows besides the reports, by bus key
	// ("feeder/bus"): for obfuscation the key mu_b and the count n_b.
	Known map[string]map[string]float64 `json:"known"`
	// BusSums is the SO's recovered sum per bus key.
	BusSums map[string][]float64 `json:"bus_sums_kw"`
	// History maps a vehicle to the mean of its messages over the last
	// HistoryWindow iterations (float mechanisms only): what an observer
	// who sees every iteration can average.
	History map[int][]float64 `json:"-"`
}

// busKey names a group the way files do.
func busKey(p *charging.Problem, g charging.Group) string {
	f := &p.Feeders[g.Feeder]
	return f.Name + "/" + f.Buses[g.Bus].Name
}

// groups returns the problem's vehicles grouped by (feeder, bus), in the
// solver's order, for mechanisms that need per-bus state before solving.
func groups(p *charging.Problem) map[[2]int][]int {
	m := map[[2]int][]int{}
	for i, ev := range p.EVs {
		k := [2]int{ev.Feeder, ev.Bus}
		m[k] = append(m[k], i)
	}
	return m
}

// None is the insecure baseline: every vehicle sends its schedule in the
// clear.
type None struct {
	rec recorder
}

// NewNone returns the baseline mechanism; record keeps the last iteration's
// reports for attacks.
func NewNone(p *charging.Problem, record bool) *None {
	return &None{rec: newRecorder(p, "none", record, 1)}
}

// Name implements Mechanism.
func (*None) Name() string { return "none" }

// Params implements Mechanism.
func (*None) Params() map[string]float64 { return map[string]float64{} }

// ReportBytes implements Mechanism: slots float64 values.
func (*None) ReportBytes(slots int) int { return 8 * slots }

// Exact implements Mechanism.
func (*None) Exact() bool { return true }

// View implements Mechanism.
func (n *None) View() *View { return n.rec.view(nil) }

// Aggregate implements charging.Aggregator.
func (n *None) Aggregate(iter int, g charging.Group, x []float64, slots int, sum []float64) error {
	if err := (charging.Exact{}).Aggregate(iter, g, x, slots, sum); err != nil {
		return err
	}
	n.rec.floats(iter, g, x, slots, 1, sum)
	return nil
}
