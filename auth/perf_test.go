package auth

import (
	"fmt"
	"testing"
	"time"

	"github.com/flynn/noise"
)

// BenchmarkHandshake measures the Noise NK handshake of a vehicle session
// (25519, ChaCha20-Poly1305, SHA-256, the hello as prologue, the vehicle's
// choice and the LAG's 32-byte challenge as payloads). Run it with -cpu 1:
// the handshakes/s metric is then per core.
//
//   - both: the vehicle's and the LAG's side, one op = one full handshake
//     (the vehicle writes message 1, the LAG reads it and writes message 2,
//     the vehicle reads it; five X25519 operations in all);
//   - lag: the LAG's side alone: its channel's set-up, reading message 1
//     (one DH) and writing message 2 (an ephemeral key pair and one DH);
//     the vehicle's message 1 is made with the timer stopped;
//   - lag-session: what LAG.Open and LAG.Receive of the first handshake
//     message cost the LAG in all (the hello, the channel, the challenge,
//     the session's state), the vehicle's work untimed.
func BenchmarkHandshake(b *testing.B) {
	n := newTestNet(b, CAConfig{}, "lag-1")
	l := n.lags["lag-1"].lag
	_, out, err := l.Open(n.now)
	if err != nil {
		b.Fatal(err)
	}
	hello := out.Frames[0].Data
	prologue := append([]byte(prologueBVLAG), hello...)
	choicePayload := encode(&choice{Version: ProtocolVersion, Scheme: SchemePseudonym})
	var challenge [32]byte
	vehicle := func() (*channel, []byte) {
		ch, err := newChannel(noise.HandshakeNK, true, prologue, staticKey{}, l.static.dh.Public)
		if err != nil {
			b.Fatal(err)
		}
		m1, err := ch.write(choicePayload)
		if err != nil {
			b.Fatal(err)
		}
		return ch, m1
	}
	lagSide := func(m1 []byte) []byte {
		ch, err := newChannel(noise.HandshakeNK, false, prologue, l.static, nil)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := ch.read(m1); err != nil {
			b.Fatal(err)
		}
		m2, err := ch.write(challenge[:])
		if err != nil || !ch.ready() {
			b.Fatal(err)
		}
		return m2
	}
	perSecond := func(b *testing.B) {
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "handshakes/s")
	}
	b.Run("both", func(b *testing.B) {
		for b.Loop() {
			v, m1 := vehicle()
			if _, err := v.read(lagSide(m1)); err != nil || !v.ready() {
				b.Fatal(err)
			}
		}
		perSecond(b)
	})
	b.Run("lag", func(b *testing.B) {
		for range b.N {
			b.StopTimer()
			_, m1 := vehicle()
			b.StartTimer()
			lagSide(m1)
		}
		perSecond(b)
	})
	b.Run("lag-session", func(b *testing.B) {
		for range b.N {
			id, out, err := l.Open(n.now)
			if err != nil || string(out.Frames[0].Data) != string(hello) {
				b.Fatal(err)
			}
			b.StopTimer()
			_, m1 := vehicle()
			b.StartTimer()
			if out, err = l.Receive(n.now, id, append([]byte{frameHS1}, m1...)); err != nil || len(out.Frames) != 1 || out.Frames[0].Data[0] != frameHS2 {
				b.Fatal(err)
			}
			b.StopTimer()
			l.Close(id)
			b.StartTimer()
		}
		perSecond(b)
	})
}

// BenchmarkLAGAdmitParallel: one op admits a session of each of n
// vehicles with pseudonym certificates at one LAG, end to end: hello,
// Noise NK handshake, authentication request, one batch verification,
// the CA's verdicts turned into permits (and resumption tickets: the
// vehicles are at home), the vehicles' grants, one batch confirmation.
// The benchmark's timer runs only while the LAG works (admitPhased), so
// ns/op is the LAG's wall time for n vehicles; the vehicles' and the
// CA's work runs between the LAG's phases, untimed. The LAG's phases use
// one goroutine per P, as the LAG server does: run it with -cpu 2 for
// two cores (-cpu 1 runs the sequential API, Receive and Flush).
func BenchmarkLAGAdmitParallel(b *testing.B) {
	n, node, bvs := admitNet(b)
	for _, count := range []int{1000, len(bvs)} {
		b.Run(fmt.Sprintf("n=%d", count), func(b *testing.B) {
			n.t = b
			d := &lagDriver{l: node.lag, workers: workersFor()}
			var phases [6]time.Duration
			var cpu time.Duration
			var gcs uint64
			b.StopTimer()
			b.ResetTimer()
			for range b.N {
				vs := make([]phasedVehicle, count)
				for i, bv := range bvs[:count] {
					if bv.Pseudonyms() == 0 {
						n.enrol(bv, 4)
					}
					vs[i] = bv.NewSession(SessionOptions{Schemes: []Scheme{SchemePseudonym}})
				}
				a := admitPhased(b, n, node, d, vs)
				for i, err := range a.errs {
					if err != nil {
						b.Fatalf("vehicle %d refused: %v", i, err)
					}
				}
				for i := range phases {
					phases[i] += a.phases[i]
				}
				cpu += a.lagCPU
				gcs += a.lagGCs
				closeAll(n, node, a.ids)
			}
			b.ReportMetric(b.Elapsed().Seconds()*1e6/float64(b.N*count), "µs/vehicle")
			b.ReportMetric(cpu.Seconds()/float64(b.N), "cpu-s")
			b.ReportMetric(float64(gcs)/float64(b.N), "gcs")
			for i, name := range []string{"handshake", "requests", "batch", "permits", "grants", "confirm"} {
				b.ReportMetric(phases[i].Seconds()/float64(b.N), name+"-s")
			}
		})
	}
}

// admitCache holds BenchmarkLAGAdmitParallel's CA, LAG and 10,000
// enrolled vehicles for the whole process: enrolling them takes longer
// than the benchmark (the CA re-signs the group's key list at each
// enrolment), and -count runs the benchmark function again.
var admitCache struct {
	n   *testNet
	bvs []*BV
}

func admitNet(b *testing.B) (*testNet, *lagNode, []*BV) {
	if admitCache.n == nil {
		n := newTestNet(b, CAConfig{}, "lag-1")
		bvs := make([]*BV, 10000)
		for i := range bvs {
			bvs[i] = n.newBV(fmt.Sprintf("VIN-%05d", i), "utility-a", 2)
		}
		admitCache.n, admitCache.bvs = n, bvs
	}
	admitCache.n.t = b
	return admitCache.n, admitCache.n.lags["lag-1"], admitCache.bvs
}

// BenchmarkEnrol: one op enrols n vehicles at a fresh CA, end to end (the
// vehicle's request, the CA's certificates and signed group list, the
// vehicle's checks). Its cost grows with the square of n: every answer
// carries the whole group list.
func BenchmarkEnrol(b *testing.B) {
	for _, count := range []int{1000, 4000} {
		b.Run(fmt.Sprintf("n=%d", count), func(b *testing.B) {
			for b.Loop() {
				n := newTestNet(b, CAConfig{}, "lag-1")
				for i := range count {
					n.newBV(fmt.Sprintf("VIN-%05d", i), "utility-a", 2)
				}
			}
			b.ReportMetric(b.Elapsed().Seconds()*1e6/float64(b.N*count), "µs/vehicle")
		})
	}
}
