package dashboard

import (
	"context"
	"fmt"

	"github.com/gridveil/gridveil/runfile"
	"github.com/gridveil/gridveil/scenario"
)

// A finished run's convergence history: convergence.json, written by
// gridveil sim from its solver and by gridveil up from the SO's progress
// messages, which a Live receives (docs/FORMATS.md).

// Convergence is the convergence.json of the coordination l followed:
// the points of its current day, against the run's last iteration
// (solution.json's) and whether it converged. Iterations whose progress
// message never arrived are listed as missing, never invented.
func (l *Live) Convergence(meta *scenario.Meta, privacy string, iterations int, converged bool) (*runfile.Convergence, error) {
	st := l.State()
	points := make([]runfile.ConvergencePoint, 0, len(st.History))
	for _, p := range st.History {
		if p.Iter > iterations {
			return nil, fmt.Errorf("convergence history: the SO published iteration %d, its record ends at %d: the progress came from another day on the same bus", p.Iter, iterations)
		}
		points = append(points, runfile.ConvergencePoint{Iter: p.Iter, Objective: p.Objective, Change: p.Change, Violation: p.Violation, Gap: p.Gap})
	}
	return runfile.NewConvergence(meta, privacy, runfile.ConvergenceFromProgress, iterations, converged, points)
}

// Await waits until l has received iteration iter in its final form
// (certified when converged is true), or until ctx ends; it reports
// whether it did. The SO's last messages can still be on their way to
// this subscriber when the SO's process has exited.
func (l *Live) Await(ctx context.Context, iter int, converged bool) bool {
	for {
		l.mu.Lock()
		p, wait := l.st.Latest, l.changed
		l.mu.Unlock()
		if p != nil && p.Iter >= iter && (p.Converged || !converged) {
			return true
		}
		select {
		case <-wait:
		case <-ctx.Done():
			return false
		}
	}
}

// ConvergenceView is a finished run's convergence history on the
// coordination view (convergence.json).
type ConvergenceView struct {
	// Source is where the figures come from: "solver" (gridveil sim) or
	// "so-progress" (gridveil up: the SO's progress messages).
	Source  string  `json:"source"`
	Missing int     `json:"missing"`
	Points  []Point `json:"points"`
}

// addConvergence puts convergence.json's history on v, or says why it
// cannot.
func (r *Run) addConvergence(v *CoordView) {
	c, st := load[runfile.Convergence](r, "convergence.json")
	if !v.use(st, "convergence history") {
		return
	}
	cv := &ConvergenceView{Source: c.Source, Missing: len(c.Missing), Points: make([]Point, len(c.History))}
	for i, p := range c.History {
		cv.Points[i] = Point{Iter: p.Iter, Objective: p.Objective, Change: p.Change, Violation: p.Violation, Gap: p.Gap}
	}
	if cv.Missing > 0 {
		v.Absent = append(v.Absent, fmt.Sprintf("convergence history: %d of the %d iterations have no point (progress messages the recorder did not receive)", cv.Missing, c.Iterations))
	}
	v.Convergence = cv
}
