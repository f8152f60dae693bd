package day

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// UpConfig is a day with every party as its own OS process (gridveil up).
type UpConfig struct {
	// Exe is the gridveil binary the parties run as ("serve --role ...").
	Exe string
	// Data is the day's data directory: each party keeps its state, its
	// address and its output under it.
	Data string
	// Plan arguments, passed alike to every party.
	Scenario string
	Seed     uint64
	SeedSet  bool
	EVs      int
	MaxIter  int
	// Hosts is the number of EV host processes (default 2).
	Hosts int
	// NATS, if set, is an external server or cluster; else a nats process
	// is started.
	NATS string
	// Pace, Resend and DropAfter are passed to the SO (DropAfter 0: its
	// default).
	Pace, Resend time.Duration
	DropAfter    int
	// Privacy is the mechanism between the vehicles and the SO: "none"
	// (or empty) or "masking", passed to the SO and every EV host, with
	// MaskThreshold (0: a majority of each bus) and MaskSingle.
	Privacy       string
	MaskThreshold int
	MaskSingle    bool
	// Events receives every line the parties print, prefixed with the
	// party's name; Progress the SO's lines only.
	Events   io.Writer
	Progress io.Writer
	// Restarts is how often a party killed by a signal is started again
	// (default 3): the SO resumes from its saved state.
	Restarts int
	// OnBus, if set, is called once with the bus's client URL, before the
	// SO starts (a dashboard subscribes to the SO's progress then).
	OnBus func(url string) error
}

// UpResult is what the parties left.
type UpResult struct {
	SO       *SOResult
	Hosts    []*HostSchedules
	Restarts map[string]int
	Lost     []string // EV hosts that died; their vehicles were dropped
}

// party is one child process and how to start it again.
type party struct {
	name     string
	args     []string
	cmd      *exec.Cmd
	finished chan struct{} // closed when the current process has exited
}

// exit is one party's process ending.
type exit struct {
	p   *party
	err error
}

// Up starts the parties, waits until the SO and every EV host finish,
// stops the bus and returns their files. Ending ctx (Ctrl-C) stops every
// party: SIGTERM, then SIGKILL after 5 s. A party that fails stops the day
// with its name and its last words.
func Up(ctx context.Context, cfg UpConfig) (*UpResult, error) {
	if cfg.Hosts <= 0 {
		cfg.Hosts = 2
	}
	if cfg.Restarts == 0 {
		cfg.Restarts = 3
	}
	if cfg.Events == nil {
		cfg.Events = io.Discard
	}
	if err := os.MkdirAll(cfg.Data, 0o755); err != nil {
		return nil, err
	}
	// A day starts from nothing: an earlier day's state and files under
	// the same directory would be resumed or read as this one's.
	for _, stale := range []string{"so", "nats", "pids"} {
		if err := os.RemoveAll(filepath.Join(cfg.Data, stale)); err != nil {
			return nil, err
		}
	}
	for h := 0; ; h++ {
		d := filepath.Join(cfg.Data, fmt.Sprintf("ev-%d", h))
		if _, err := os.Stat(d); err != nil {
			break
		}
		if err := os.RemoveAll(d); err != nil {
			return nil, err
		}
	}
	var ev eventLog
	ev.w = cfg.Events
	ev.progress = cfg.Progress
	ev.data = cfg.Data
	common := []string{"--data", cfg.Data, "--scenario", cfg.Scenario}
	if cfg.SeedSet {
		common = append(common, "--seed", strconv.FormatUint(cfg.Seed, 10))
	}
	if cfg.EVs > 0 {
		common = append(common, "--evs", strconv.Itoa(cfg.EVs))
	}
	switch cfg.Privacy {
	case "", "none":
	case "masking":
		common = append(common, "--privacy", "masking", "--mask-threshold", strconv.Itoa(cfg.MaskThreshold))
		if cfg.MaskSingle {
			common = append(common, "--mask-single")
		}
	default:
		return nil, fmt.Errorf("--privacy %s: the parties run none or masking (the other mechanisms run in gridveil sim only)", cfg.Privacy)
	}
	// Every party's exit arrives here, once per process started; the
	// buffer holds every exit the day can have, so no sender blocks after
	// Up has returned.
	exits := make(chan exit, 2*(cfg.Hosts+2)+cfg.Restarts)
	var all []*party
	stopAll := func() {
		for i := len(all) - 1; i >= 0; i-- {
			all[i].stop()
		}
	}
	defer stopAll()

	natsURL := cfg.NATS
	if natsURL == "" {
		n := &party{name: "nats", args: []string{"serve", "--role", "nats", "--data", cfg.Data, "--addr", "127.0.0.1:0"}}
		if err := n.start(cfg.Exe, &ev, exits); err != nil {
			return nil, err
		}
		all = append(all, n)
		addr := filepath.Join(cfg.Data, "nats", "addr")
		for i := 0; ; i++ {
			if b, err := os.ReadFile(addr); err == nil && len(b) > 0 {
				natsURL = strings.TrimSpace(string(b))
				break
			}
			select {
			case e := <-exits:
				return nil, fmt.Errorf("the NATS server did not start: %v; %s", e.err, ev.last("nats"))
			case <-ctx.Done():
				return nil, ctx.Err()
			case <-time.After(20 * time.Millisecond):
			}
			if i > 1500 {
				return nil, errors.New("the NATS server wrote no address in 30 s")
			}
		}
	}
	common = append(common, "--nats", natsURL)
	if cfg.OnBus != nil {
		if err := cfg.OnBus(natsURL); err != nil {
			return nil, err
		}
	}
	so := &party{name: "so", args: append([]string{"serve", "--role", "so", "--max-iter", strconv.Itoa(max(cfg.MaxIter, 1))}, common...)}
	if cfg.Pace > 0 {
		so.args = append(so.args, "--pace", cfg.Pace.String())
	}
	if cfg.Resend > 0 {
		so.args = append(so.args, "--resend", cfg.Resend.String())
	}
	if cfg.DropAfter > 0 {
		so.args = append(so.args, "--drop-after", strconv.Itoa(cfg.DropAfter))
	}
	workers := []*party{so}
	for h := 0; h < cfg.Hosts; h++ {
		workers = append(workers, &party{name: fmt.Sprintf("ev-%d", h),
			args: append([]string{"serve", "--role", "ev", "--host", strconv.Itoa(h), "--hosts", strconv.Itoa(cfg.Hosts)}, common...)})
	}
	for _, p := range workers {
		if err := p.start(cfg.Exe, &ev, exits); err != nil {
			return nil, err
		}
		all = append(all, p)
	}
	res := &UpResult{Restarts: map[string]int{}}
	pending := len(workers)
	for pending > 0 {
		var e exit
		select {
		case e = <-exits:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		p, err := e.p, e.err
		if p.name == "nats" {
			return nil, fmt.Errorf("the NATS server stopped in the middle of the day (%v); its last words: %s", err, ev.last("nats"))
		}
		if err == nil {
			pending--
			continue
		}
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			ws, signaled := ee.Sys().(syscall.WaitStatus)
			signaled = signaled && ws.Signaled()
			if signaled && p.name != "so" {
				// An EV host that dies takes its vehicles' controllers with
				// it: the SO drops them once they stay silent, and their
				// charge points keep the last schedule it counted. Starting
				// the host again would start its vehicles over, so it stays
				// down and the others finish the day.
				res.Lost = append(res.Lost, p.name)
				fmt.Fprintf(&ev, "up: %s was killed by %s; its vehicles drop out and the day goes on without them\n", p.name, ws.Signal())
				pending--
				continue
			}
			if signaled && p.name == "so" && res.Restarts[p.name] < cfg.Restarts {
				// A crashed SO resumes from its saved state.
				res.Restarts[p.name]++
				fmt.Fprintf(&ev, "up: %s was killed by %s; starting it again (it resumes from its saved state)\n", p.name, ws.Signal())
				if err := p.start(cfg.Exe, &ev, exits); err != nil {
					return nil, err
				}
				continue
			}
		}
		return nil, fmt.Errorf("%s failed: %v; its last words: %s", p.name, err, ev.last(p.name))
	}
	var sr SOResult
	if err := ReadJSONFile(filepath.Join(cfg.Data, "so", "so.json"), &sr); err != nil {
		return nil, err
	}
	res.SO = &sr
	for h := 0; h < cfg.Hosts; h++ {
		name := fmt.Sprintf("ev-%d", h)
		if slices.Contains(res.Lost, name) {
			continue
		}
		var hs HostSchedules
		if err := ReadJSONFile(filepath.Join(cfg.Data, name, "schedules.json"), &hs); err != nil {
			return nil, err
		}
		res.Hosts = append(res.Hosts, &hs)
	}
	return res, nil
}

func (p *party) start(exe string, ev *eventLog, exits chan<- exit) error {
	cmd := exec.Command(exe, p.args...)
	cmd.Env = os.Environ()
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting %s: %w", p.name, err)
	}
	p.cmd = cmd
	finished := make(chan struct{})
	p.finished = finished
	go func() {
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			ev.line(p.name, sc.Text())
		}
		err := cmd.Wait()
		close(finished)
		exits <- exit{p, err}
	}()
	// The pid, for an operator (or a crash test) that wants to signal
	// one party.
	return WriteText(filepath.Join(ev.data, "pids", p.name), strconv.Itoa(cmd.Process.Pid)+"\n")
}

// stop ends a running party: SIGTERM, then SIGKILL after 5 s.
func (p *party) stop() {
	if p.cmd == nil || p.cmd.Process == nil {
		return
	}
	select {
	case <-p.finished:
		return // already gone
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	t := time.AfterFunc(5*time.Second, func() { _ = p.cmd.Process.Kill() })
	<-p.finished
	t.Stop()
}

// eventLog collects the parties' lines: to the events file, the SO's to
// the progress writer, and the last few of each party for error messages.
type eventLog struct {
	mu       sync.Mutex
	w        io.Writer
	progress io.Writer
	data     string
	tail     map[string][]string
}

func (e *eventLog) line(who, s string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	fmt.Fprintf(e.w, "%s %-5s %s\n", time.Now().UTC().Format("15:04:05.000"), who, s)
	if e.progress != nil && who == "so" && !strings.Contains(s, "level=") {
		fmt.Fprintln(e.progress, s)
	}
	if e.tail == nil {
		e.tail = map[string][]string{}
	}
	t := append(e.tail[who], s)
	if len(t) > 5 {
		t = t[len(t)-5:]
	}
	e.tail[who] = t
}

func (e *eventLog) Write(b []byte) (int, error) {
	e.line("up", strings.TrimRight(string(b), "\n"))
	return len(b), nil
}

func (e *eventLog) last(who string) string {
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(e.tail[who]) == 0 {
		return "(nothing)"
	}
	return strings.Join(e.tail[who], " | ")
}
