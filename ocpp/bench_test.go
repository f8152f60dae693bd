package ocpp

import (
	"context"
	"encoding/json"
	"fmt"
	"runtime"
	"sync"
	"testing"

	"github.com/gorilla/websocket"
)

// BenchmarkProfiles1000: 1,000 stations connected to one CSMS, each with a
// transaction, each sent a 96-slot TxProfile (schema-validated both ways)
// by SetTxProfile and answering Accepted from its own goroutine. One
// iteration sends every profile; heap-bytes/conn is the CSMS's and the
// clients' heap per connected station, measured after connecting.
//
//	go test ./ocpp -run '^$' -bench Profiles1000 -benchtime 5x
func BenchmarkProfiles1000(b *testing.B) {
	const n, slots = 1000, 96
	stations := map[string]string{}
	for i := range n {
		stations[fmt.Sprintf("CP-%04d", i)] = "pw"
	}
	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	c, addr := startCSMS(b, Options{Stations: stations})
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
		start := `[2,"s","TransactionEvent",{"eventType":"Started","timestamp":"2025-01-15T19:00:00Z","triggerReason":"Authorized","seqNo":0,"transactionInfo":{"transactionId":"T"},"evse":{"id":1}}]`
		if err := ws.WriteMessage(websocket.TextMessage, []byte(start)); err != nil {
			b.Fatal(err)
		}
		if _, _, err := ws.ReadMessage(); err != nil {
			b.Fatal(err)
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
