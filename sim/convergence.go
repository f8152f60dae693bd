package sim

import (
	"io"

	"github.com/gridveil/gridveil/runfile"
	"github.com/gridveil/gridveil/scenario"
)

// Convergence is the day's convergence.json: every iteration of the
// coordination's solve as the solver recorded it (objective, change,
// voltage violation, and the duality gap where a bound round certified
// it). With --baseline ldp it is the solve on the estimated baselines,
// the one the SO ran.
func (d *Day) Convergence() (*runfile.Convergence, error) {
	sol := d.Outcome.Solution
	return runfile.NewConvergence(d.Meta, d.Mechanism.Name(), runfile.ConvergenceFromSolver, sol.Iterations, sol.Converged,
		runfile.PointsFromStats(sol.History))
}

// writeConvergence renders convergence.json.
func (d *Day) writeConvergence(w io.Writer) error {
	c, err := d.Convergence()
	if err != nil {
		return err
	}
	return scenario.WriteJSON(w, c)
}
