package runfile_test

import (
	"bytes"
	"encoding/json"
	"io"
	"strings"
	"testing"

	"github.com/gridveil/gridveil/aggregate"
	"github.com/gridveil/gridveil/home/homereport"
	"github.com/gridveil/gridveil/runfile"
	"github.com/gridveil/gridveil/sim"
)

// written renders one file of a run.
func written(t *testing.T, files map[string]func(io.Writer) error, name string) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := files[name](&b); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return b.Bytes()
}

// TestHomeReportFromDocument: home.json alone renders the report the run
// wrote, byte for byte (so a dashboard or a third party holding only the
// file draws the same figures), with series and a sweep, and without
// series.
func TestHomeReportFromDocument(t *testing.T) {
	for _, edit := range []func(*sim.Homes){
		func(h *sim.Homes) { h.Sweep = true },
		func(h *sim.Homes) { h.NoSeries = true },
	} {
		h := sim.DefaultHomes()
		h.Homes, h.TrainHomes = 5, 40
		edit(&h)
		doc, err := sim.RunHomes(h)
		if err != nil {
			t.Fatal(err)
		}
		files := sim.HomeFiles(doc)
		var back runfile.Home
		if err := json.Unmarshal(written(t, files, "home.json"), &back); err != nil {
			t.Fatal(err)
		}
		var page bytes.Buffer
		if err := homereport.Write(&page, runfile.HomeReport(&back)); err != nil {
			t.Fatal(err)
		}
		if want := written(t, files, "report.html"); !bytes.Equal(page.Bytes(), want) {
			t.Errorf("sweep %v, no series %v: the report rendered from home.json differs from the run's", h.Sweep, h.NoSeries)
		}
		if strings.Contains(page.String(), "Run with --sweep") == h.Sweep {
			t.Errorf("sweep %v: the report's note on --sweep is wrong", h.Sweep)
		}
	}
}

// TestLDPReportFromDocument: ldp.json alone renders the run's report.html
// byte for byte.
func TestLDPReportFromDocument(t *testing.T) {
	c := sim.DefaultLDP()
	c.Meters, c.Trials, c.Epsilons = 300, 4, "0.5,2"
	res, err := sim.RunLDP(c)
	if err != nil {
		t.Fatal(err)
	}
	files := sim.LDPFiles(res)
	var back runfile.LDP
	if err := json.Unmarshal(written(t, files, "ldp.json"), &back); err != nil {
		t.Fatal(err)
	}
	var page bytes.Buffer
	if err := runfile.WriteLDPReport(&page, &back); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(page.Bytes(), written(t, files, "report.html")) {
		t.Error("the report rendered from ldp.json differs from the run's")
	}
}

// TestSummaryNamesItsCommand: the summary is headed by the command that
// ran the day (gridveil up shares it with gridveil sim).
func TestSummaryNamesItsCommand(t *testing.T) {
	p, m, err := sim.Load("ieee13-paper", 0, false, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	d, err := sim.RunDay(p, m, sim.Defaults())
	if err != nil {
		t.Fatal(err)
	}
	o, err := runfile.NewOutcome(p, p, d.Outcome.Solution, aggregate.NewNone(p, false), false)
	if err != nil {
		t.Fatal(err)
	}
	for _, cmd := range []string{"sim", "up"} {
		var b strings.Builder
		runfile.PrintSummary(&b, cmd, p, m, o, d.Solve)
		if want := "gridveil " + cmd + ": ieee13-paper, seed 1\n"; !strings.HasPrefix(b.String(), want) {
			t.Errorf("summary begins %q, want %q", strings.SplitN(b.String(), "\n", 2)[0], want)
		}
	}
}
