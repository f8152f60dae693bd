package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gridveil/gridveil/charging"
	"github.com/gridveil/gridveil/scenario"
)

// TestSimV2GFiles runs ieee13-v2g and checks, from instance.json and
// solution.json alone, every battery vehicle's power and SOC bounds, that
// the reported SOC follows from its net schedule, the certificate
// (rebuilt problem, the file's aggregate and duals), and that discharging
// lowered the peak against charging only.
func TestSimV2GFiles(t *testing.T) {
	dir := t.TempDir()
	out, err := run(t, "sim", "--scenario", "ieee13-v2g", "--out", dir)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "v2g          17 bidirectional") {
		t.Errorf("summary lacks the v2g line:\n%s", out)
	}
	f, err := os.Open(filepath.Join(dir, "instance.json"))
	if err != nil {
		t.Fatal(err)
	}
	p, _, err := scenario.ReadInstance(f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(dir, "solution.json"))
	if err != nil {
		t.Fatal(err)
	}
	var sol scenario.Solution
	if err := json.Unmarshal(data, &sol); err != nil {
		t.Fatal(err)
	}
	if !sol.Converged || sol.Gap == nil || *sol.Gap > 1e-9 || sol.V2G == nil {
		t.Fatalf("not a certified V2G solution: converged %v gap %v v2g %v", sol.Converged, sol.Gap, sol.V2G != nil)
	}
	agg := p.Baseline()
	batteries := 0
	for _, ev := range p.EVs {
		x := sol.Schedules[ev.ID]
		for tt, v := range x {
			agg[tt] += v
		}
		if !ev.Battery() {
			continue
		}
		batteries++
		s, soc := ev.SOCArrive, sol.V2G.SOC[ev.ID]
		for tt, v := range x {
			in := tt >= ev.Arrive && tt < ev.Depart
			if v < -ev.PDis-1e-9 || v > ev.PMax+1e-9 || (!in && v != 0) {
				t.Fatalf("%s slot %d: %v kW outside [-%v, %v] or its window", ev.ID, tt, v, ev.PDis, ev.PMax)
			}
			s += ev.Efficiency*p.DT*math.Max(v, 0) - p.DT/ev.DisEfficiency*math.Max(-v, 0)
			if s < ev.SOCMin-1e-6 || s > ev.Capacity+1e-6 || math.Abs(s-soc[tt]) > 1e-6 {
				t.Fatalf("%s slot %d: SOC %.6f (file %.6f) outside [%v, %v]", ev.ID, tt, s, soc[tt], ev.SOCMin, ev.Capacity)
			}
		}
		if s < ev.SOCDepart-1e-6 {
			t.Fatalf("%s leaves with %.4f kWh, needs %.4f", ev.ID, s, ev.SOCDepart)
		}
	}
	if batteries == 0 || sol.V2G.Batteries != batteries {
		t.Fatalf("%d battery vehicles in the instance, %d in the solution", batteries, sol.V2G.Batteries)
	}
	mu := make([][][]float64, len(p.Feeders))
	for fi, fd := range p.Feeders {
		mu[fi] = make([][]float64, len(fd.Buses))
		mu[fi][0] = make([]float64, p.Slots)
		for b := 1; b < len(fd.Buses); b++ {
			mu[fi][b] = sol.Duals[fd.Name+"/"+fd.Buses[b].Name]
		}
	}
	if g := charging.Objective(agg) - charging.LowerBound(p, agg, mu); math.Sqrt(2*math.Max(g, 0)) > 0.05 {
		t.Fatalf("certificate from the files: gap %g kW^2", g)
	}
	c := sol.V2G.ChargingOnly
	if c == nil || !(sol.V2G.Peak < c.Peak) || !(sol.Objective < c.Objective) || sol.V2G.DischargedKWh <= 0 {
		t.Fatalf("discharging bought nothing: %+v", sol.V2G)
	}
}

// TestSimChargingOnlyUnchanged pins the charging-only files to the bytes
// gridveil wrote before vehicles could discharge (measured with the
// binary built from main at b3d76b0), and checks that a V2G share of 0
// gives the same files.
func TestSimChargingOnlyUnchanged(t *testing.T) {
	want := map[string]string{
		"solution.json": "efc3d6e5e0a5a7f776725e12c8161ae896215cd75f6bad119ef473db3ebe2afc",
		"instance.json": "453e0639470ec54d6b04a05b63d2326d4994758b5fff4cceec156da930cf14e6",
	}
	a, b := t.TempDir(), t.TempDir()
	if _, err := run(t, "sim", "--out", a, "-q"); err != nil {
		t.Fatal(err)
	}
	if _, err := run(t, "sim", "--out", b, "-q", "--v2g-share", "0", "--scenario", "ieee13-paper"); err != nil {
		t.Fatal(err)
	}
	for name, h := range want {
		da, _ := os.ReadFile(filepath.Join(a, name))
		db, _ := os.ReadFile(filepath.Join(b, name))
		sum := sha256.Sum256(da)
		if hex.EncodeToString(sum[:]) != h {
			t.Errorf("%s of the paper scenario changed: sha256 %x, before V2G %s", name, sum, h)
		}
		if !bytes.Equal(da, db) {
			t.Errorf("%s differs with --v2g-share 0", name)
		}
	}
}

func TestSimV2GBadInput(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--v2g-share", "1.5"}, "--v2g-share 1.5: give the fraction"},
		{[]string{"--v2g-share", "-0.1"}, "--v2g-share -0.1: give the fraction"},
	} {
		_, err := run(t, append([]string{"sim", "--out", t.TempDir(), "-q"}, c.args...)...)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: got %v, want %q", c.args, err, c.want)
		}
	}
}
