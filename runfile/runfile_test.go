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

// reportFromDocument decodes the run's document doc into v and renders
// report.html with render, which reads v alone; it fails unless that is
// the run's report.html byte for byte, and returns the page.
func reportFromDocument(t *testing.T, files map[string]func(io.Writer) error, doc string, v any, render func(io.Writer) error) string {
	t.Helper()
	if err := json.Unmarshal(written(t, files, doc), v); err != nil {
		t.Fatal(err)
	}
	var page bytes.Buffer
	if err := render(&page); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(page.Bytes(), written(t, files, "report.html")) {
		t.Errorf("the report rendered from %s differs from the run's", doc)
	}
	return page.String()
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
		var back runfile.Home
		page := reportFromDocument(t, sim.HomeFiles(doc), "home.json", &back, func(w io.Writer) error { return homereport.Write(w, runfile.HomeReport(&back)) })
		if strings.Contains(page, "Run with --sweep") == h.Sweep {
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
	var back runfile.LDP
	reportFromDocument(t, sim.LDPFiles(res), "ldp.json", &back, func(w io.Writer) error { return runfile.WriteLDPReport(w, &back) })
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
