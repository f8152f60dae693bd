package auth

import (
	"testing"

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
