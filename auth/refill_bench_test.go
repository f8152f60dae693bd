package auth

import (
	"crypto/rand"
	"fmt"
	"testing"
)

// BenchmarkRefill measures one refill (an enrolled vehicle asks for one
// more pseudonym) in a group of the given size: the CA's answer, in bytes
// on the channel, and the time of the whole exchange (vehicle and CA).
func BenchmarkRefill(b *testing.B) {
	for _, members := range []int{10_000, 100_000} {
		b.Run(fmt.Sprintf("members=%d", members), func(b *testing.B) {
			n := newTestNet(b, CAConfig{MaxPseudonymsPerPeriod: 1 << 30}, "lag-1")
			bv := n.newBV("VIN-0", "utility-a", 1)
			g := n.ca.groups["utility-a"]
			for range members - 1 {
				var k [32]byte
				_, _ = rand.Read(k[:])
				n.ca.addRingKey("utility-a", g, k)
				n.ca.groupVer["utility-a"]++
			}
			n.enrol(bv, 1) // the vehicle holds the whole list
			bytes := 0
			for b.Loop() {
				e, f, err := bv.Enrol([32]byte{}, 1)
				if err != nil {
					b.Fatal(err)
				}
				id := n.ca.Open()
				bytes = 0
				for f != nil {
					out, err := n.ca.Receive(n.now, id, f)
					if err != nil {
						b.Fatal(err)
					}
					f = nil
					for _, fr := range out.Frames {
						if fr.To == id {
							bytes += len(fr.Data)
							if f, err = e.Receive(fr.Data); err != nil {
								b.Fatal(err)
							}
						}
					}
				}
				n.ca.Close(id)
				if !e.Done() {
					b.Fatal("refill not done")
				}
			}
			b.ReportMetric(float64(bytes), "bytes/answer")
		})
	}
}
