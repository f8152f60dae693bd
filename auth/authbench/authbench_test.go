package authbench

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

// TestRunSmall measures a small configuration and checks the table's
// shape and that the figures are plausible (positive, batch cheaper than
// one-by-one, a bigger ring costlier).
func TestRunSmall(t *testing.T) {
	res, err := Run(Config{Vehicles: 40, Rings: []int{2, 8}, MinTime: 5 * time.Millisecond}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Rows) != 4 {
		t.Fatalf("%d rows", len(res.Rows))
	}
	p, l2, l8 := res.Rows[0], res.Rows[1], res.Rows[2]
	if p.SignUS <= 0 || p.VerifyUS <= 0 || p.LAGUS <= 0 || p.CAUS <= 0 || p.BatchUS <= 0 {
		t.Fatalf("pseudonym row %+v", p)
	}
	if p.BatchUS >= p.VerifyUS {
		t.Errorf("batch %.1f µs/credential is not cheaper than %.1f one by one", p.BatchUS, p.VerifyUS)
	}
	if l8.VerifyUS <= l2.VerifyUS || l8.SigBytes <= l2.SigBytes {
		t.Errorf("ring of 8 not costlier than ring of 2: %+v %+v", l8, l2)
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
