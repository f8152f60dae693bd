package dashboard

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestAuthFilesDamaged: a torn last line is skipped and said, a file with
// a foreign line is named as unusable with what to do, and the good
// events of every file are counted.
func TestAuthFilesDamaged(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("lag-a/auth-events.jsonl", `{"schema":"gridveil/auth-event/v1","party":"lag","kind":"admitted"}
{"schema":"gridveil/auth-event/v1","party":"lag","kind":"refused","reason":"expired"}
{"schema":"gridveil/auth-event/v1","party":"lag","kind":"batch-verified","size":4,"verify_seconds":0.002}
{"schema":"gridveil/auth-ev`)
	write("ca/auth-events.jsonl", `{"schema":"gridveil/auth-event/v1","party":"ca","kind":"revoked"}
{"schema":"gridveil/other/v9"}
`)
	run, err := OpenRun(dir)
	if err != nil {
		t.Fatal(err)
	}
	v := run.Auth()
	if v.Admitted != 1 || v.Refused["expired"] != 1 || v.Revocations != 1 || v.Batches.Count != 1 || v.Batches.Requests != 4 || v.Batches.VerifySecondsMax != 0.002 {
		t.Fatalf("counted %+v", v)
	}
	all := strings.Join(v.Absent, "\n")
	if !strings.Contains(all, "lag-a/auth-events.jsonl ends with a line cut short") || !strings.Contains(all, "ca/auth-events.jsonl: line 2 has schema") {
		t.Fatalf("the view says:\n%s", all)
	}
	if empty, _ := OpenRun(t.TempDir()); !strings.Contains(strings.Join(empty.Auth().Absent, ""), "no auth-events.jsonl") {
		t.Fatal("a run without events files does not say so")
	}
}
