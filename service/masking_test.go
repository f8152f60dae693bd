package service

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gridveil/gridveil/aggregate"
	"github.com/gridveil/gridveil/charging"
	"github.com/gridveil/gridveil/transport"
)

// TestMaskingOverNATS runs the day with masking between the SO and three
// EV hosts over an embedded NATS server, with a listener on every
// coordination subject: the day converges to the in-process solver's
// aggregate within 1e-6 kW, no report in the clear crosses the bus (every
// vehicle-to-SO message is a key, a masked report or an answer), and the
// SO's coordinator holds no vehicle's schedule.
func TestMaskingOverNATS(t *testing.T) {
	srv := startNATS(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	p := problem(t, "ieee13-paper")
	spy := connect(t, srv.ClientURL(), "spy", testLog(t))
	var mu sync.Mutex
	kinds := map[string]int{}
	items := map[string]int{} // masked reports and answers inside the batches
	var bad []string
	unsub, err := spy.Subscribe("gridveil.v1.coord.>", "", func(s string, d []byte) {
		_, _, kind, err := transport.ParseCoord(s)
		mu.Lock()
		defer mu.Unlock()
		if err != nil {
			return // progress, hello
		}
		kinds[kind]++
		var r charging.Report
		if r.UnmarshalBinary(d) == nil {
			bad = append(bad, s)
		}
		if kind == "maskrep" {
			batch, err := aggregate.ReadMaskReports(d)
			if err != nil {
				bad = append(bad, s+": "+err.Error())
			} else {
				items[kind] += batch.Len()
			}
		}
		if kind == "maskans" {
			if batch, err := aggregate.ReadMaskAnswers(d); err == nil {
				items[kind] += batch.Len()
			}
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer unsub()
	d := runDayWith(t, ctx, p, srv.ClientURL(), 3, "", nil, dayOpts{masking: &MaskingConfig{}})
	checkAgainstSolve(t, p, d)
	mu.Lock()
	defer mu.Unlock()
	if len(bad) > 0 || kinds["report"] != 0 || items["maskrep"] < len(p.EVs)*d.so.Coordinator.Operator().Iteration() || kinds["maskkey"] < len(p.EVs) {
		t.Fatalf("messages on the bus by kind %v, items %v; in the clear or malformed: %v", kinds, items, bad)
	}
	// Batched: every host sends one envelope per bus and round, so there
	// are fewer report messages than reports (3 hosts, 84 vehicles on 9
	// buses: at most 27 envelopes for 84 reports a round).
	if kinds["maskrep"] >= items["maskrep"] || kinds["maskans"] >= items["maskans"] {
		t.Fatalf("reports and answers are not batched: %v messages for %v items", kinds, items)
	}
	for _, dm := range d.so.Coordinator.State().Dropped {
		t.Fatalf("member %s dropped", dm.Sender)
	}
	t.Logf("messages by kind: %v, items in batches: %v", kinds, items)
}

// TestMaskingSORefuses publishes, mid-day, messages the SO must refuse
// on the masking subjects: malformed bytes, a report in the clear, a
// masked report replayed from an earlier round, a key from a stranger, an
// answer from nobody asked, and to the hosts a forged key list. Each is
// refused with its subject and reason, and the day still ends at Solve's
// aggregate.
func TestMaskingSORefuses(t *testing.T) {
	srv := startNATS(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	p := problem(t, "ieee13-paper")
	evil := connect(t, srv.ClientURL(), "evil", testLog(t))
	b := p.EVs[0]
	var once sync.Once
	var replay []byte
	var rmu sync.Mutex
	unsub, err := evil.Subscribe(transport.MaskReport(b.Feeder, b.Bus), "", func(_ string, d []byte) {
		rmu.Lock()
		defer rmu.Unlock()
		if replay == nil {
			replay = append([]byte(nil), d...)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer unsub()
	progress := func(st charging.Stats) {
		if st.Iter != 5 {
			return
		}
		once.Do(func() {
			rmu.Lock()
			old := replay
			rmu.Unlock()
			clear, _ := (&charging.Report{Round: 6, Iter: 5, Phase: charging.PhaseStep, Feeder: b.Feeder, Bus: b.Bus, Sender: "ps-" + b.ID, Values: make([]float64, p.Slots)}).MarshalBinary()
			stranger, _ := (&aggregate.MaskKey{Feeder: b.Feeder, Bus: b.Bus, Sender: "ps-stranger", PublicKey: make([]byte, 32)}).MarshalBinary()
			ans, _ := (&aggregate.MaskAnswer{Round: 0, Feeder: b.Feeder, Bus: b.Bus, Pass: 1, Index: 0, Correction: make([]uint64, p.Slots)}).MarshalBinary()
			forged := append(append([]byte(nil), stranger...), make([]byte, 64)...)
			for subj, data := range map[string][]byte{
				transport.MaskReport(b.Feeder, b.Bus):  []byte("GV\x12\x01garbage"),
				transport.CoordReport(b.Feeder, b.Bus): clear,
				transport.MaskKey(b.Feeder, b.Bus):     stranger,
				transport.MaskAnswer(b.Feeder, b.Bus):  ans,
				transport.MaskKeys(b.Feeder, b.Bus):    forged,
			} {
				if err := evil.Publish(subj, data); err != nil {
					t.Error(err)
				}
			}
			if err := evil.Publish(transport.MaskReport(b.Feeder, b.Bus), old); err != nil {
				t.Error(err)
			}
			// The replayed reports under another host's name: refused
			// item by item, since their vehicles are another host's.
			batch, err := aggregate.ReadMaskReports(old)
			if err != nil {
				t.Error(err)
				return
			}
			batch.Host = "evil-host"
			other, err := batch.MarshalBinary()
			if err != nil {
				t.Error(err)
				return
			}
			if err := evil.Publish(transport.MaskReport(b.Feeder, b.Bus), other); err != nil {
				t.Error(err)
			}
		})
	}
	var logs lockedBuffer
	d := runDayWith(t, ctx, p, srv.ClientURL(), 2, "", progress, dayOpts{masking: &MaskingConfig{}, log: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn}))})
	checkAgainstSolve(t, p, d)
	out := logs.String()
	for _, want := range []string{"reason=malformed", `reason="report in clear"`, `reason=stale`, `reason="unknown sender"`, "reason=forged", `reason="not hosted by sender"`} {
		if !strings.Contains(out, want) {
			t.Errorf("no refusal with %s in the logs", want)
		}
	}
	for _, r := range []string{"malformed", "report in clear", "stale", "unknown sender", "not hosted by sender"} {
		if d.so.Refused[r] == 0 {
			t.Errorf("the SO counts no %q refusal: %v", r, d.so.Refused)
		}
	}
	if !strings.Contains(out, "subject=gridveil.v1.coord.f") {
		t.Errorf("refusals do not name their subject:\n%s", out)
	}
}

// lockedBuffer is a log sink for several parties' goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
