package transport

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
)

// Conn is a party's connection to the message bus: it reconnects by
// itself (to any server of a cluster) and counts what it moves.
type Conn struct {
	nc  *nats.Conn
	log *slog.Logger

	Sent, Received         atomic.Int64 // messages
	SentBytes, RecvBytes   atomic.Int64
	Reconnects, Disconnect atomic.Int64
}

// Connect connects to the NATS server or cluster at urls (comma-separated
// nats://host:port). name identifies the party in the server's monitoring.
// It retries the first connection for up to wait, so parties started
// together need no start-up order; after that, reconnection is forever.
func Connect(urls, name string, wait time.Duration, log *slog.Logger) (*Conn, error) {
	return connect(urls, name, wait, log, false)
}

// ConnectOrdered is Connect that tries the servers in the order given
// instead of a random one (nats.go's default, which spreads clients over
// a cluster): for a party that should prefer a nearby node.
func ConnectOrdered(urls, name string, wait time.Duration, log *slog.Logger) (*Conn, error) {
	return connect(urls, name, wait, log, true)
}

func connect(urls, name string, wait time.Duration, log *slog.Logger, ordered bool) (*Conn, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	c := &Conn{log: log}
	opts := []nats.Option{
		nats.Name(name),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(100 * time.Millisecond),
		nats.ReconnectJitter(50*time.Millisecond, 50*time.Millisecond),
		// Messages published while disconnected wait here (8 MiB), then
		// publishing fails: the protocols above retransmit.
		nats.ReconnectBufSize(8 << 20),
		nats.PingInterval(5 * time.Second),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err == nil {
				return // our own Close
			}
			c.Disconnect.Add(1)
			log.Warn("disconnected from NATS", "err", err)
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			c.Reconnects.Add(1)
			log.Info("reconnected to NATS", "url", nc.ConnectedUrl())
		}),
		nats.ErrorHandler(func(_ *nats.Conn, s *nats.Subscription, err error) {
			subj := ""
			if s != nil {
				subj = s.Subject
			}
			log.Error("NATS error", "subject", subj, "err", err)
		}),
	}
	if ordered {
		opts = append(opts, nats.DontRandomize())
	}
	deadline := time.Now().Add(wait)
	for {
		nc, err := nats.Connect(urls, opts...)
		if err == nil {
			c.nc = nc
			return c, nil
		}
		if !time.Now().Before(deadline) {
			return nil, fmt.Errorf("cannot reach NATS at %s after %s: %w; start a server there, or leave out --nats to use the embedded one", urls, wait, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Publish sends data on subject.
func (c *Conn) Publish(subject string, data []byte) error {
	if err := c.nc.Publish(subject, data); err != nil {
		return fmt.Errorf("publishing on %s: %w", subject, err)
	}
	c.Sent.Add(1)
	c.SentBytes.Add(int64(len(data)))
	return nil
}

// Handler receives one message: its subject and payload. The payload is
// the handler's to keep.
type Handler func(subject string, data []byte)

// Subscribe calls h for every message on subject (wildcards allowed), one
// at a time in arrival order. queue, if not empty, makes the subscriber
// one of a queue group: each message goes to one member, which is how a
// sharded SO spreads its fan-in.
func (c *Conn) Subscribe(subject, queue string, h Handler) (func() error, error) {
	cb := func(m *nats.Msg) {
		c.Received.Add(1)
		c.RecvBytes.Add(int64(len(m.Data)))
		h(m.Subject, m.Data)
	}
	var s *nats.Subscription
	var err error
	if queue != "" {
		s, err = c.nc.QueueSubscribe(subject, queue, cb)
	} else {
		s, err = c.nc.Subscribe(subject, cb)
	}
	if err != nil {
		return nil, fmt.Errorf("subscribing to %s: %w", subject, err)
	}
	// A party that falls behind keeps up to 512 MiB of messages before
	// NATS drops for it (and the protocol retransmits). The bound is in
	// bytes only: at 10^5 vehicles the SO receives 10^5 reports of about
	// 1 kB in one burst per round, more than a count limit of 64k (the
	// first 10^5 run lost reports to it and re-sent rounds).
	if err := s.SetPendingLimits(-1, 512<<20); err != nil {
		return nil, err
	}
	return s.Unsubscribe, nil
}

// Flush waits until the server has everything published so far, for at
// most 10 s when ctx has no deadline of its own.
func (c *Conn) Flush(ctx context.Context) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
	}
	if err := c.nc.FlushWithContext(ctx); err != nil {
		return fmt.Errorf("flushing to NATS: %w", err)
	}
	return nil
}

// Connected reports whether the connection is up now.
func (c *Conn) Connected() bool { return c.nc.IsConnected() }

// Close drains the subscriptions (handlers in flight finish) and closes.
func (c *Conn) Close() {
	if err := c.nc.Drain(); err != nil && !errors.Is(err, nats.ErrConnectionClosed) {
		c.nc.Close()
		return
	}
	for i := 0; i < 100 && !c.nc.IsClosed(); i++ {
		time.Sleep(20 * time.Millisecond)
	}
	c.nc.Close()
}
