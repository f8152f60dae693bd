package main

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"testing"
)

type convergenceFile struct {
	Schema     string `json:"schema"`
	Source     string `json:"source"`
	Iterations int    `json:"iterations"`
	Converged  bool   `json:"converged"`
	Missing    []int  `json:"missing"`
	History    []struct {
		Iter      int      `json:"iteration"`
		Objective float64  `json:"objective"`
		Change    float64  `json:"change_kw"`
		Violation float64  `json:"violation_pu"`
		Gap       *float64 `json:"relative_gap"`
	} `json:"history"`
}

func readConvergence(t *testing.T, dir string) convergenceFile {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "convergence.json"))
	if err != nil {
		t.Fatal(err)
	}
	var c convergenceFile
	if err := json.Unmarshal(b, &c); err != nil {
		t.Fatal(err)
	}
	return c
}

// checkConvergenceLikeSim checks gridveil up's convergence.json, recorded
// from the SO's progress messages, against gridveil sim's, the solver's
// own record of the same day: the same iterations, and at each the same
// objective, change and violation (to the float noise of a different
// summation order over processes) and a gap exactly where sim certified
// one. allowMissing is how many iterations' messages may be lost (an SO
// killed between saving an iteration and publishing it).
func checkConvergenceLikeSim(t *testing.T, upDir, simDir string, allowMissing int) {
	t.Helper()
	u, s := readConvergence(t, upDir), readConvergence(t, simDir)
	if u.Schema != "gridveil/convergence/v1" || u.Source != "so-progress" || s.Source != "solver" {
		t.Fatalf("convergence.json: up %q from %q, sim %q from %q", u.Schema, u.Source, s.Schema, s.Source)
	}
	if u.Iterations != s.Iterations || u.Converged != s.Converged || len(s.Missing) != 0 || len(s.History) != s.Iterations {
		t.Fatalf("up ran %d iterations (converged %v), sim %d (converged %v, %d points, %d missing)", u.Iterations, u.Converged, s.Iterations, s.Converged, len(s.History), len(s.Missing))
	}
	if len(u.Missing) > allowMissing || len(u.History)+len(u.Missing) != u.Iterations {
		t.Fatalf("up's convergence.json has %d points and misses %v of %d iterations", len(u.History), u.Missing, u.Iterations)
	}
	near := func(a, b float64) bool { return math.Abs(a-b) <= 1e-6+1e-9*math.Abs(b) }
	for _, p := range u.History {
		q := s.History[p.Iter-1]
		if q.Iter != p.Iter || !near(p.Objective, q.Objective) || !near(p.Change, q.Change) || !near(p.Violation, q.Violation) {
			t.Fatalf("iteration %d: up recorded objective %v, change %v, violation %v; sim %v, %v, %v", p.Iter, p.Objective, p.Change, p.Violation, q.Objective, q.Change, q.Violation)
		}
		if (p.Gap == nil) != (q.Gap == nil) || (p.Gap != nil && math.Abs(*p.Gap-*q.Gap) > 1e-9) {
			t.Fatalf("iteration %d: up's gap %v, sim's %v", p.Iter, p.Gap, q.Gap)
		}
	}
}
