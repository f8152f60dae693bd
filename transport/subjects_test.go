package transport

import "testing"

func TestParseCoord(t *testing.T) {
	for _, c := range []struct {
		f, b int
	}{{0, 1}, {3, 12}, {12345, 0}} {
		for _, kind := range []string{"report", "bcast"} {
			s := CoordReport(c.f, c.b)
			if kind == "bcast" {
				s = CoordBroadcast(c.f, c.b)
			}
			f, b, k, err := ParseCoord(s)
			if err != nil || f != c.f || b != c.b || k != kind {
				t.Errorf("%s: %d %d %q %v", s, f, b, k, err)
			}
		}
	}
	for _, s := range []string{"", "gridveil.v1.coord.f0.report", "gridveil.v1.coord.fx.b1.report", "gridveil.v1.coord.f0.b1.", "gridveil.v1.coord.f-1.b1.report",
		"gridveil.v1.coord.f0.b1.report.extra", "gridveil.v1.coord.f+1.b1.report", "gridveil.v2.coord.f0.b1.report", CoordProgress, CoordHello} {
		if _, _, _, err := ParseCoord(s); err == nil {
			t.Errorf("%q parsed as a coordination subject", s)
		}
	}
}

func FuzzParseCoord(f *testing.F) {
	f.Add(CoordReport(1, 2))
	f.Add("gridveil.v1.coord.f0.b")
	f.Fuzz(func(t *testing.T, s string) {
		fe, b, k, err := ParseCoord(s)
		if err != nil {
			return
		}
		if fe < 0 || b < 0 || k == "" {
			t.Fatalf("%q gave %d %d %q", s, fe, b, k)
		}
	})
}
