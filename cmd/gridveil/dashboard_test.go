package main

import (
	"strings"
	"testing"
)

// TestDashboardRefuses: the command refuses to listen beyond loopback
// without a token, and to start with nothing to show, saying what to give.
func TestDashboardRefuses(t *testing.T) {
	t.Setenv("GRIDVEIL_DASHBOARD_TOKEN", "")
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"dashboard", "--addr", "0.0.0.0:0", "--run", t.TempDir()}, "give --token"},
		{[]string{"dashboard", "--addr", "127.0.0.1:0", "--token", "short", "--run", t.TempDir()}, "at least 16"},
		{[]string{"dashboard", "--addr", "127.0.0.1:0"}, "give --run DIR"},
		{[]string{"dashboard", "--addr", "127.0.0.1:0", "--run", "/nonexistent/gridveil-run"}, "give --run the --out directory"},
	} {
		root := newRoot()
		root.SetArgs(c.args)
		err := root.Execute()
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("gridveil %s: %v, want an error saying %q", strings.Join(c.args, " "), err, c.want)
		}
	}
}

func TestRedactURLs(t *testing.T) {
	got := redactURLs("nats://alice:s3cret@10.0.0.5:4222,nats://10.0.0.6:4222")
	if strings.Contains(got, "s3cret") || strings.Contains(got, "alice") || !strings.Contains(got, "10.0.0.6:4222") {
		t.Errorf("redactURLs: %q", got)
	}
}
