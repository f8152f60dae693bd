package authbench

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

// TestRunSmall measures a small configuration and checks the table's
// structure: every scheme has its row, every measurement ran (positive),
// and the sizes, which do not depend on the machine, are those of the
// constructions (an LSAG signature grows by one scalar per ring member).
// Orders of cost (batch against one by one, ring of 8 against ring of 2)
// are timings, and timings on a shared machine are for benchmarks
// (BenchmarkBatchVerify, BenchmarkLSAG), never for a test.
func TestRunSmall(t *testing.T) {
	res, err := Run(Config{Vehicles: 40, Rings: []int{2, 8}, MinTime: 5 * time.Millisecond}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Rows) != 4 {
		t.Fatalf("%d rows", len(res.Rows))
	}
	p, l2, l8, g := res.Rows[0], res.Rows[1], res.Rows[2], res.Rows[3]
	if !p.Implemented || !l2.Implemented || !l8.Implemented || g.Implemented {
		t.Fatalf("implemented flags: %v %v %v %v", p.Implemented, l2.Implemented, l8.Implemented, g.Implemented)
	}
	if p.SignUS <= 0 || p.VerifyUS <= 0 || p.LAGUS <= 0 || p.CAUS <= 0 || p.BatchUS <= 0 || p.Per1000S <= 0 {
		t.Fatalf("pseudonym row has a measurement that did not run: %+v", p)
	}
	for _, l := range []Row{l2, l8} {
		if l.SignUS <= 0 || l.VerifyUS <= 0 || l.LAGUS <= 0 || l.MeasuredWith <= 0 {
			t.Fatalf("LSAG row has a measurement that did not run: %+v", l)
		}
	}
	// LSAG: c_0, one response scalar per member, the key image (32 bytes each).
	if d := l8.SigBytes - l2.SigBytes; d != 6*32 {
		t.Errorf("ring of 8 signature is %d bytes longer than ring of 2, want 6 scalars (192)", d)
	}
	if p.MeasuredWith != 40 {
		t.Errorf("pseudonym end-to-end run admitted %d vehicles, want 40", p.MeasuredWith)
	}
	var out bytes.Buffer
	if err := res.Print(&out); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"pseudonym certificate", "LSAG ring of 8", "not implemented", "1000 at one LAG"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, out.String())
		}
	}
}
