package service

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/gridveil/gridveil/transport"
)

// Metrics are a service's Prometheus metrics, on a registry of its own
// (no global state), served by ServeMetrics.
type Metrics struct {
	Registry *prometheus.Registry

	Iterations prometheus.Counter     // SO: iterations completed
	Rounds     prometheus.Counter     // SO: rounds completed
	Resent     prometheus.Counter     // SO: rounds re-sent for lack of progress
	Refused    *prometheus.CounterVec // refused messages by reason
	RoundTime  prometheus.Histogram   // SO: seconds from a round's broadcast to its last report
	Reports    prometheus.Counter     // EV host: reports sent
	Gap        prometheus.Gauge       // SO: last certified relative duality gap
	Dropped    prometheus.Counter     // SO: vehicles dropped for silence
}

// NewMetrics registers a service's metrics, and those of its bus
// connection (messages and bytes each way, reconnections) when conn is
// not nil.
func NewMetrics(role string, conn *transport.Conn) *Metrics {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	labels := prometheus.Labels{"role": role}
	m := &Metrics{Registry: reg,
		Iterations: prometheus.NewCounter(prometheus.CounterOpts{Name: "gridveil_coord_iterations_total", Help: "Coordination iterations completed.", ConstLabels: labels}),
		Rounds:     prometheus.NewCounter(prometheus.CounterOpts{Name: "gridveil_coord_rounds_total", Help: "Coordination rounds completed (steps, bound rounds, the start).", ConstLabels: labels}),
		Resent:     prometheus.NewCounter(prometheus.CounterOpts{Name: "gridveil_coord_rounds_resent_total", Help: "Rounds whose broadcasts went out again for lack of progress.", ConstLabels: labels}),
		Refused:    prometheus.NewCounterVec(prometheus.CounterOpts{Name: "gridveil_messages_refused_total", Help: "Messages refused, by reason.", ConstLabels: labels}, []string{"reason"}),
		RoundTime:  prometheus.NewHistogram(prometheus.HistogramOpts{Name: "gridveil_coord_round_seconds", Help: "Time from a round's broadcast to its last report.", ConstLabels: labels, Buckets: prometheus.ExponentialBuckets(1e-4, 2, 20)}),
		Reports:    prometheus.NewCounter(prometheus.CounterOpts{Name: "gridveil_coord_reports_sent_total", Help: "Vehicle reports sent (re-sends included).", ConstLabels: labels}),
		Dropped:    prometheus.NewCounter(prometheus.CounterOpts{Name: "gridveil_coord_vehicles_dropped_total", Help: "Vehicles dropped for silence; their last schedules stay as fixed loads.", ConstLabels: labels}),
		Gap:        prometheus.NewGauge(prometheus.GaugeOpts{Name: "gridveil_coord_relative_gap", Help: "Last certified relative duality gap (NaN before the first).", ConstLabels: labels}),
	}
	reg.MustRegister(m.Iterations, m.Rounds, m.Resent, m.Refused, m.RoundTime, m.Reports, m.Gap, m.Dropped)
	if conn != nil {
		c := func(name, help string, v func() int64) {
			reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help, ConstLabels: labels}, func() float64 { return float64(v()) }))
		}
		c("gridveil_nats_messages_sent_total", "Messages published on NATS.", conn.Sent.Load)
		c("gridveil_nats_messages_received_total", "Messages received from NATS.", conn.Received.Load)
		c("gridveil_nats_bytes_sent_total", "Payload bytes published on NATS.", conn.SentBytes.Load)
		c("gridveil_nats_bytes_received_total", "Payload bytes received from NATS.", conn.RecvBytes.Load)
		c("gridveil_nats_reconnects_total", "Reconnections to NATS.", conn.Reconnects.Load)
	}
	return m
}

// ServeMetrics serves /metrics on addr (loopback unless the operator says
// otherwise) until ctx ends, and returns the address bound.
func ServeMetrics(ctx context.Context, addr string, m *Metrics, log *slog.Logger) (string, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", fmt.Errorf("metrics address %s: %w; choose another --metrics address or leave it empty", addr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{}))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("metrics server", "err", err)
		}
	}()
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	return ln.Addr().String(), nil
}
