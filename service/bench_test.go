package service

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/gridveil/gridveil/aggregate"
	"github.com/gridveil/gridveil/charging"
	"github.com/gridveil/gridveil/scenario"
	"github.com/gridveil/gridveil/transport"
)

// BenchmarkCoordination measures one coordination iteration of a region
// (96 slots, 7 EVs per bus) in-process (charging.Solve) and over an
// embedded NATS server on loopback (the SO and EV hosts of this package,
// each vehicle a charging.Vehicle), with the "none" mechanism and with
// masking (in-process: aggregate.Masking as Solve's aggregator; over
// NATS: MaskingConfig, every vehicle a MaskVehicle and the SO a
// MaskAggregator per bus): every run stops after the same fixed number of
// iterations, so the modes do the same arithmetic. It reports
// ns/iteration and, over NATS, the messages and bytes per vehicle and
// iteration at the SO (everything in and out), over iterations 2 to 30
// (the steady state). Compare the modes with benchstat -col /mode:
//
//	go test ./service -run XXX -bench Coordination -benchtime 3x -count 5 > c.txt
//	benchstat -col /mode c.txt
func BenchmarkCoordination(b *testing.B) {
	const iters = 30
	for _, evs := range []int{1000, 10000} {
		sp, err := scenario.Load("ieee13-region")
		if err != nil {
			b.Fatal(err)
		}
		p, _, err := scenario.Build(sp, 1, evs)
		if err != nil {
			b.Fatal(err)
		}
		// No gap check can end the run early: the tolerances are out of reach.
		opt := charging.Options{MaxIter: iters, RelTol: 1e-300, GapTol: 1e-300}
		inProcess := func(b *testing.B, masking bool) {
			var steady time.Duration
			for range b.N {
				var first time.Time
				o := opt
				if masking {
					m, err := aggregate.NewMasking(p, aggregate.MaskingConfig{}, 1, false)
					if err != nil {
						b.Fatal(err)
					}
					o.Aggregator = m
				}
				o.Progress = func(st charging.Stats) {
					if st.Iter == 1 {
						first = time.Now()
					}
					if st.Iter == iters {
						steady += time.Since(first)
					}
				}
				sol, err := charging.Solve(p, o)
				if err != nil || sol.Iterations != iters {
					b.Fatalf("%v, %d iterations", err, sol.Iterations)
				}
			}
			b.ReportMetric(float64(steady.Nanoseconds())/float64(b.N*(iters-1)), "ns/iteration")
		}
		b.Run(fmt.Sprintf("evs=%d/mode=inprocess", evs), func(b *testing.B) { inProcess(b, false) })
		b.Run(fmt.Sprintf("evs=%d/mode=inprocess-masking", evs), func(b *testing.B) { inProcess(b, true) })
		overNATS := func(b *testing.B, masking *MaskingConfig) {
			srv, err := transport.StartServer(transport.ServerConfig{})
			if err != nil {
				b.Fatal(err)
			}
			defer srv.Shutdown()
			cfg, busEVs := p.OperatorConfig(opt)
			members := make([][]string, len(busEVs))
			for g, evs := range busEVs {
				for _, i := range evs {
					members[g] = append(members[g], fmt.Sprintf("ps-%d", i))
				}
			}
			const hosts = 2
			var msgs, bytes, soMsgs0, soBytes0 int64
			var steady, steady0 time.Duration
			for range b.N {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
				var wg sync.WaitGroup
				var hostConns []*transport.Conn
				for h := 0; h < hosts; h++ {
					var evs []charging.EV
					var ids []string
					for i := h; i < len(p.EVs); i += hosts {
						evs, ids = append(evs, p.EVs[i]), append(ids, fmt.Sprintf("ps-%d", i))
					}
					c, err := transport.Connect(srv.ClientURL(), "ev", 5*time.Second, nil)
					if err != nil {
						b.Fatal(err)
					}
					hostConns = append(hostConns, c)
					wg.Add(1)
					go func() {
						defer wg.Done()
						if _, err := RunEVHost(ctx, EVHostConfig{SOKey: testSOPub, Slots: p.Slots, DT: p.DT, EVs: evs, Senders: ids, Conn: c, Masking: masking != nil}); err != nil {
							b.Error(err)
						}
					}()
				}
				sc, err := transport.Connect(srv.ClientURL(), "so", 5*time.Second, nil)
				if err != nil {
					b.Fatal(err)
				}
				var first time.Time
				res, err := RunSO(ctx, SOConfig{Key: testSOKey, Operator: cfg, Members: members, Conn: sc, Resend: 5 * time.Second, Linger: 200 * time.Millisecond, Masking: masking,
					Progress: func(st charging.Stats) {
						if st.Iter == 1 {
							first = time.Now()
							soMsgs0 = sc.Received.Load() + sc.Sent.Load()
							soBytes0 = sc.RecvBytes.Load() + sc.SentBytes.Load()
						}
						if st.Iter == iters && steady0 == 0 {
							steady0 = time.Since(first)
							msgs += sc.Received.Load() + sc.Sent.Load() - soMsgs0
							bytes += sc.RecvBytes.Load() + sc.SentBytes.Load() - soBytes0
						}
					}})
				if err != nil || res.Coordinator.Operator().Iteration() != iters {
					b.Fatalf("%v", err)
				}
				wg.Wait()
				steady += steady0
				steady0 = 0
				for _, c := range hostConns {
					c.Close()
				}
				sc.Close()
				cancel()
			}
			// Iterations 2 to iters: the steady state, without start-up
			// (connections, subscriptions) or the linger after the end.
			per := float64(b.N * (iters - 1))
			b.ReportMetric(float64(steady.Nanoseconds())/per, "ns/iteration")
			b.ReportMetric(float64(msgs)/per/float64(len(p.EVs)), "msgs/EV-iteration")
			b.ReportMetric(float64(bytes)/per/float64(len(p.EVs)), "B/EV-iteration")
		}
		b.Run(fmt.Sprintf("evs=%d/mode=nats", evs), func(b *testing.B) { overNATS(b, nil) })
		b.Run(fmt.Sprintf("evs=%d/mode=nats-masking", evs), func(b *testing.B) { overNATS(b, &MaskingConfig{}) })
	}
}
