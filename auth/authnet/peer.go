package authnet

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/gridveil/gridveil/auth"
	"github.com/gridveil/gridveil/auth/wire"
)

// Frame limits: what a vehicle may send, and what the CA link carries.
const (
	maxVehicleFrame = 1 << 20
	maxLinkFrame    = wire.MaxFrame
	writeTimeout    = 10 * time.Second
	queueLen        = 512
)

// keepaliveFrame keeps an idle connection open (auth.FrameKeepalive).
var keepaliveFrame = []byte{auth.FrameKeepalive}

func isKeepalive(f []byte) bool { return len(f) == 1 && f[0] == auth.FrameKeepalive }

// isClosing reports whether a read ended because the connection was closed
// (by the peer or by us): not worth a log line of its own.
func isClosing(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed)
}

// peer writes frames to a connection from its own goroutine, so that the
// party's lock is never held on a slow network write.
type peer struct {
	conn net.Conn
	out  chan []byte
	once sync.Once
	done chan struct{}
}

func newPeer(c net.Conn) *peer {
	p := &peer{conn: c, out: make(chan []byte, queueLen), done: make(chan struct{})}
	go p.writer()
	return p
}

func (p *peer) writer() {
	for {
		select {
		case f := <-p.out:
			if f == nil { // close after what was queued before
				p.close()
				return
			}
			_ = p.conn.SetWriteDeadline(time.Now().Add(writeTimeout))
			if err := wire.WriteFrame(p.conn, f); err != nil {
				p.close()
				return
			}
		case <-p.done:
			return
		}
	}
}

// send queues a frame; a peer whose queue is full is disconnected.
func (p *peer) send(f []byte) {
	select {
	case <-p.done:
	case p.out <- f:
	default:
		p.close()
	}
}

// closeAfter closes the connection once the frames queued so far are sent.
func (p *peer) closeAfter() {
	select {
	case <-p.done:
	case p.out <- nil:
	default:
		p.close()
	}
}

// drainAndClose lets the writer send what is queued (a refusal says why)
// and then closes the connection; the write deadline bounds the wait.
func (p *peer) drainAndClose() {
	p.closeAfter()
	select {
	case <-p.done:
	case <-time.After(writeTimeout):
	}
	p.close()
}

func (p *peer) close() {
	p.once.Do(func() {
		close(p.done)
		p.conn.Close()
	})
}

// accept waits for the next connection on ln. It returns (nil, nil) once
// ctx is done (the listener was closed for it), retries after temporary
// timeouts, and wraps any other error.
func accept(ctx context.Context, ln net.Listener) (net.Conn, error) {
	for {
		c, err := ln.Accept()
		if err == nil {
			return c, nil
		}
		if ctx.Err() != nil {
			return nil, nil
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			continue
		}
		return nil, fmt.Errorf("accept: %w", err)
	}
}
