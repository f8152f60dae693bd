package runfile

import (
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/gridveil/gridveil/charging"
	"github.com/gridveil/gridveil/scenario"
)

// TestConvergenceMissingAndRefused: iterations without a point are listed
// as missing (between points and after the last), an uncertified gap is
// null, and what a reader could not trust is refused by name.
func TestConvergenceMissingAndRefused(t *testing.T) {
	meta := &scenario.Meta{Scenario: "s", Seed: 3}
	pts := PointsFromStats([]charging.Stats{{Iter: 1, Objective: 5, Gap: math.NaN()}, {Iter: 3, Objective: 4, Gap: 0.5}})
	if pts[0].Gap != nil || pts[1].Gap == nil || *pts[1].Gap != 0.5 {
		t.Fatalf("gaps: %v, %v", pts[0].Gap, pts[1].Gap)
	}
	c, err := NewConvergence(meta, "none", ConvergenceFromProgress, 5, false, pts)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(c.Missing, []int{2, 4, 5}) || c.Schema != ConvergenceSchema || c.Seed != 3 {
		t.Fatalf("missing %v, schema %q, seed %d", c.Missing, c.Schema, c.Seed)
	}
	for name, bad := range map[string][]ConvergencePoint{
		"non-finite":     {{Iter: 1, Objective: math.Inf(1)}},
		"out of order":   {{Iter: 2}, {Iter: 1}},
		"repeated":       {{Iter: 1}, {Iter: 1}},
		"past the end":   {{Iter: 6}},
		"iteration 0":    {{Iter: 0}},
		"non-finite gap": {{Iter: 1, Gap: new(float64)}},
	} {
		if name == "non-finite gap" {
			*bad[0].Gap = math.NaN()
		}
		if _, err := NewConvergence(meta, "none", ConvergenceFromSolver, 5, false, bad); err == nil || !strings.Contains(err.Error(), "convergence history") {
			t.Errorf("%s: %v", name, err)
		}
	}
}
