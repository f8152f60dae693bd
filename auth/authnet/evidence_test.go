package authnet

import (
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/gridveil/gridveil/auth"
)

// TestEvidenceFile: records appended by a LAG read back whole; a torn last
// line (a crash in mid-write) is skipped; a damaged line is an error that
// names it; the file is private to the LAG's owner.
func TestEvidenceFile(t *testing.T) {
	store, err := OpenStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	l, err := OpenEvidenceLog(store)
	if err != nil {
		t.Fatal(err)
	}
	recs := []*auth.Evidence{
		{LAGID: "lag-1", Time: 1772474940, Binding: [32]byte{1}, Scheme: auth.SchemePseudonym, Role: auth.RoleLoad, Cred: []byte{1, 2}, Sig: []byte{3}},
		{LAGID: "lag-1", Time: 1772474950, Binding: [32]byte{2}, Resumed: true, Origin: [32]byte{1}, Scheme: auth.SchemePseudonym, Role: auth.RoleLoad},
	}
	for _, e := range recs {
		if err := l.Append(e); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if err := l.Append(recs[0]); err == nil {
		t.Fatal("append after close")
	}
	path := store.Path(EvidenceFile)
	if st, _ := os.Stat(path); st.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v", st.Mode())
	}
	got, err := ReadEvidence(path)
	if err != nil || len(got) != 2 || string(got[1].Marshal()) != string(recs[1].Marshal()) {
		t.Fatalf("read %d records, %v", len(got), err)
	}
	data, _ := os.ReadFile(path)
	lines := strings.SplitAfter(string(data), "\n")

	torn := lines[0] + lines[1][:len(lines[1])/2]
	os.WriteFile(path, []byte(torn), 0o600)
	if got, err := ReadEvidence(path); err != nil || len(got) != 1 {
		t.Fatalf("torn last line: %d records, %v", len(got), err)
	}
	for what, bad := range map[string]string{
		"not JSON":          "garbage\n",
		"bad hex":           strings.Replace(lines[0], `"evidence":"`, `"evidence":"zz`, 1),
		"not evidence":      strings.Replace(lines[0], `"evidence":"`, `"evidence":"00`, 1),
		"session disagrees": strings.Replace(lines[0], `"session":"01`, `"session":"02`, 1),
		"unknown field":     strings.Replace(lines[0], `{`, `{"x":1,`, 1),
	} {
		os.WriteFile(path, []byte(bad+lines[1]), 0o600)
		if _, err := ReadEvidence(path); err == nil || !strings.Contains(err.Error(), "line 1") {
			t.Errorf("%s: %v", what, err)
		}
	}
	if _, err := ReadEvidence(path + ".missing"); err == nil {
		t.Fatal("missing file")
	}
}

// TestEvidenceTornTailRepaired: a LAG that restarts after a power loss
// tore the last line of its evidence file keeps appending whole lines:
// every record, old and new, reads back (a new record fused onto the torn
// line made ReadEvidence refuse the whole file), and the torn bytes are
// kept beside the file.
func TestEvidenceTornTailRepaired(t *testing.T) {
	store, _ := OpenStore(t.TempDir())
	l, err := OpenEvidenceLog(store)
	if err != nil {
		t.Fatal(err)
	}
	ev := func(i byte) *auth.Evidence {
		return &auth.Evidence{LAGID: "lag-1", Time: 1772474940 + int64(i), Binding: [32]byte{i}, Scheme: auth.SchemePseudonym, Role: auth.RoleLoad, Cred: []byte{i}, Sig: []byte{3}}
	}
	for i := range byte(3) {
		if err := l.Append(ev(i + 1)); err != nil {
			t.Fatal(err)
		}
	}
	l.Close()
	path := store.Path(EvidenceFile)
	data, _ := os.ReadFile(path)
	lines := strings.SplitAfter(string(data), "\n")
	tornPart := lines[2][:len(lines[2])/2]
	os.WriteFile(path, []byte(lines[0]+lines[1]+tornPart), 0o600) // the third write was cut short

	l, err = OpenEvidenceLog(store)
	if err != nil {
		t.Fatal(err)
	}
	torn := l.Torn
	for i := byte(4); i <= 5; i++ {
		if err := l.Append(ev(i)); err != nil {
			t.Fatal(err)
		}
	}
	l.Close()
	got, err := ReadEvidence(path)
	if err != nil {
		t.Fatalf("the evidence file after a torn tail and a restart: %v", err)
	}
	var bindings []byte
	for _, e := range got {
		bindings = append(bindings, e.Binding[0])
	}
	if string(bindings) != string([]byte{1, 2, 4, 5}) {
		t.Fatalf("records %v, want 1 2 4 5", bindings)
	}
	if torn != int64(len(tornPart)) {
		t.Fatalf("torn tail of %d bytes reported as %d", len(tornPart), torn)
	}
	if kept, _ := os.ReadFile(path + TornSuffix); string(kept) != tornPart+"\n" {
		t.Fatalf("torn bytes kept: %q", kept)
	}
	// A file that ends whole is left as it is.
	l, _ = OpenEvidenceLog(store)
	if l.Torn != 0 {
		t.Fatalf("a whole file reported %d torn bytes", l.Torn)
	}
	l.Close()
}

// FuzzEvidenceLine: no line of an evidence file makes the reader panic,
// and a line it accepts holds a canonical record.
func FuzzEvidenceLine(f *testing.F) {
	e := &auth.Evidence{LAGID: "lag-1", Time: 1, Binding: [32]byte{1}, Scheme: auth.SchemePseudonym, Role: auth.RoleLoad, Cred: []byte{1}, Sig: []byte{2}}
	b, _ := json.Marshal(recordOf(e))
	f.Add(string(b))
	f.Add(`{"evidence":"00"}`)
	f.Fuzz(func(t *testing.T, line string) {
		e, err := parseRecord(line)
		if err != nil {
			return
		}
		if back, err := auth.ParseEvidence(e.Marshal()); err != nil || string(back.Marshal()) != string(e.Marshal()) {
			t.Fatalf("accepted a record that does not round-trip: %v", err)
		}
	})
}
