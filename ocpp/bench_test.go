package ocpp

import (
	"context"
	"encoding/json"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// BenchmarkProfiles1000: 1,000 stations connected to one CSMS, each with a
// transaction authorised by the token of one of 1,000 sessions a real LAG
// holds, each sent a 96-slot TxProfile (schema-validated both ways) by
// SetTxProfile and answering Accepted from its own goroutine. The CSMS
// pings every station every second meanwhile. One iteration sends every
// profile; heap-bytes/conn is the CSMS's and the clients' heap per
// connected station, measured after connecting (the LAG and its sessions
// are set up before the first measurement).
//
//	go test ./ocpp -run '^$' -bench Profiles1000 -benchtime 5x
func BenchmarkProfiles1000(b *testing.B) {
	const n, slots = 1000, 96
	stations := map[string]string{}
	for i := range n {
		stations[fmt.Sprintf("CP-%04d", i)] = "pw"
	}
	w := startAuthWorld(b, "lag-1")
	tokens := make([]IDToken, n)
	for i, v := range w.vehicles(b, "bench", n) {
		_, tokens[i] = w.connect(b, v, "lag-1")
	}
	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	c, addr := startCSMS(b, Options{Stations: stations, Authorizer: w.authorizer("lag-1"), PingInterval: time.Second})
	sched := VehicleSchedule{Index: 0, SlotSeconds: 900, PowerW: make([]float64, slots)}
	for k := range sched.PowerW {
		sched.PowerW[k] = float64(k%7) * 1100
	}
	var wg sync.WaitGroup
	conns := make([]*websocket.Conn, n)
	for i := range n {
		id := fmt.Sprintf("CP-%04d", i)
		ws, _, err := dial(addr, id, "pw", Subprotocol)
		if err != nil {
			b.Fatal(err)
		}
		conns[i] = ws
		start := `[2,"s","TransactionEvent",{"eventType":"Started","timestamp":"2025-01-15T19:00:00Z","triggerReason":"Authorized","seqNo":0,"transactionInfo":{"transactionId":"T"},"evse":{"id":1},"idToken":{"idToken":"` + tokens[i].IDToken + `","type":"Central"}}]`
		if err := ws.WriteMessage(websocket.TextMessage, []byte(start)); err != nil {
			b.Fatal(err)
		}
		if _, msg, err := ws.ReadMessage(); err != nil {
			b.Fatal(err)
		} else if !strings.Contains(string(msg), `"Accepted"`) {
			b.Fatalf("station %d's Started: %s", i, msg)
		}
		wg.Add(1)
		go func() { // the station: answer every CALL Accepted
			defer wg.Done()
			for {
				_, msg, err := ws.ReadMessage()
				if err != nil {
					return
				}
				var f []json.RawMessage
				if json.Unmarshal(msg, &f) != nil || len(f) < 2 {
					continue
				}
				var id string
				json.Unmarshal(f[1], &id)
				if err := ws.WriteMessage(websocket.TextMessage, []byte(`[3,"`+id+`",{"status":"Accepted"}]`)); err != nil {
					return
				}
			}
		}()
	}
	runtime.GC()
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	perConn := float64(after.HeapAlloc-before.HeapAlloc) / n
	b.ResetTimer()
	for range b.N {
		var sw sync.WaitGroup
		errs := make(chan error, n)
		for i := range n {
			sw.Add(1)
			go func() {
				defer sw.Done()
				errs <- c.SetTxProfile(context.Background(), fmt.Sprintf("CP-%04d", i), "T", sched)
			}()
		}
		sw.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				b.Fatal(err)
			}
		}
	}
	b.StopTimer()
	b.ReportMetric(perConn, "heap-bytes/conn") // after ResetTimer, which drops metrics
	for _, ws := range conns {
		ws.Close()
	}
	wg.Wait()
}

// BenchmarkAuthorize: one station's Authorize round trip (frame, schema
// validation both ways, the LAG's session lookup) while the LAG holds
// sessions=N active sessions; the token is the last session's. The lookup
// is one map lookup in the LAG core's token index (auth.LAG.HoldsStationToken),
// so sessions=1 and sessions=1000 should cost the same.
//
//	go test ./ocpp -run '^$' -bench Authorize -benchtime 2000x
func BenchmarkAuthorize(b *testing.B) {
	for _, n := range []int{1, 1000} {
		b.Run(fmt.Sprintf("sessions=%d", n), func(b *testing.B) {
			w := startAuthWorld(b, "lag-1")
			var tok IDToken
			for _, v := range w.vehicles(b, "auth", n) {
				_, tok = w.connect(b, v, "lag-1")
			}
			_, addr := startCSMS(b, Options{Stations: map[string]string{"CP-1": "pw"}, Authorizer: w.authorizer("lag-1")})
			ws, _, err := dial(addr, "CP-1", "pw", Subprotocol)
			if err != nil {
				b.Fatal(err)
			}
			defer ws.Close()
			frame := []byte(`[2,"00000000","Authorize",{"idToken":{"idToken":"` + tok.IDToken + `","type":"Central"}}]`)
			b.ResetTimer()
			for i := range b.N {
				id := fmt.Sprintf("%08d", i)
				copy(frame[4:12], id)
				if err := ws.WriteMessage(websocket.TextMessage, frame); err != nil {
					b.Fatal(err)
				}
				_, msg, err := ws.ReadMessage()
				if err != nil {
					b.Fatal(err)
				}
				if !strings.Contains(string(msg), `"Accepted"`) {
					b.Fatalf("Authorize: %s", msg)
				}
			}
		})
	}
}
