package charging

// Group is the set of vehicles at one bus. The solver keeps vehicles sorted
// by (feeder, bus), so a group's schedules are one contiguous block.
type Group struct {
	Feeder, Bus int
	EVs         []int // indices into Problem.EVs, in solver order
}

// Aggregator is the seam between the vehicles and the system operator
// (docs/ARCHITECTURE.md C3): the SO never reads a vehicle's schedule, only what an
// Aggregator hands it for each bus. A private aggregation mechanism
// (obfuscation, masking, secret sharing, noise) implements it by simulating
// both the vehicles' side (what each one sends) and the SO's side (how the
// per-bus sum is recovered from what was sent).
//
// Aggregate sets sum[t] to the SO's view of sum_k x_k[t] over the group's
// vehicles in iteration iter. x holds the group's schedules row after row,
// len(g.EVs)*slots values. Aggregate is called concurrently for different
// groups and must not retain x.
type Aggregator interface {
	Aggregate(iter int, g Group, x []float64, slots int, sum []float64) error
}

// Exact is the insecure baseline: vehicles send their schedules in the
// clear and the SO adds them up.
type Exact struct{}

// Aggregate implements Aggregator.
func (Exact) Aggregate(_ int, g Group, x []float64, slots int, sum []float64) error {
	clear(sum[:slots])
	for k := range g.EVs {
		row := x[k*slots : (k+1)*slots]
		for t, v := range row {
			sum[t] += v
		}
	}
	return nil
}
