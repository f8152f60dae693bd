package main

import (
	"context"
	"io"
	"time"

	"github.com/gridveil/gridveil/charging"
	"github.com/gridveil/gridveil/dashboard"
	"github.com/gridveil/gridveil/scenario"
	"github.com/gridveil/gridveil/transport"
)

// upConvergence records the SO's progress messages for gridveil up's
// convergence.json: through the dashboard's live state when up serves
// one, else on a subscription of its own.
type upConvergence struct {
	dash  *upDashboard
	live  *dashboard.Live
	conn  *transport.Conn
	unsub func() error
}

func newUpConvergence(dash *upDashboard) *upConvergence {
	c := &upConvergence{dash: dash}
	if dash != nil {
		c.live = dash.live
	} else {
		c.live = dashboard.NewLive(nil)
	}
	return c
}

// onBus is day.UpConfig.OnBus: it subscribes before the SO starts.
func (c *upConvergence) onBus(url string) error {
	if c.dash != nil {
		return c.dash.follow(url)
	}
	conn, err := transport.Connect(url, "up-convergence", 10*time.Second, nil)
	if err != nil {
		return err
	}
	unsub, err := c.live.Follow(conn)
	if err != nil {
		conn.Close()
		return err
	}
	c.conn, c.unsub = conn, unsub
	return nil
}

// file renders convergence.json for the finished day sol. The SO's last
// messages may still be on their way when its process has exited: it
// waits for them (at most 10 s) and lists what never came as missing.
func (c *upConvergence) file(meta *scenario.Meta, sol *charging.Solution) func(io.Writer) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	c.live.Await(ctx, sol.Iterations, sol.Converged)
	cancel()
	conv, err := c.live.Convergence(meta, "none", sol.Iterations, sol.Converged)
	return func(w io.Writer) error {
		if err != nil {
			return err
		}
		return scenario.WriteJSON(w, conv)
	}
}

func (c *upConvergence) close() {
	if c.unsub != nil {
		_ = c.unsub()
	}
	if c.conn != nil {
		c.conn.Close()
	}
}
