package aggregate

import (
	"sync"

	"github.com/gridveil/gridveil/charging"
)

// recorder keeps the last iteration's messages of every vehicle. Each group
// writes only its own entries, under a lock because groups run
// concurrently.
type recorder struct {
	on   bool
	p    *charging.Problem
	name string
	rows int

	mu      sync.Mutex
	iter    int
	hist    map[int]*history // per vehicle: its last HistoryWindow row means
	reports map[int][][]float64
	words   map[int][][]uint64
	sums    map[string][]float64
	keys    map[int][]byte
	seeds   map[int][]byte
	corr    map[int][]uint64
	inSum   map[int]bool
}

func newRecorder(p *charging.Problem, name string, on bool, rows int) recorder {
	return recorder{on: on, p: p, name: name, rows: rows, iter: -1,
		reports: map[int][][]float64{}, words: map[int][][]uint64{}, sums: map[string][]float64{}, hist: map[int]*history{},
		keys: map[int][]byte{}, seeds: map[int][]byte{}, corr: map[int][]uint64{}, inSum: map[int]bool{}}
}

// floats records float reports laid out EV after EV, rows rows of slots
// values each.
func (r *recorder) floats(iter int, g charging.Group, msgs []float64, slots, rows int, sum []float64) {
	if !r.on || iter < 0 {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.iter = max(r.iter, iter)
	for k, ev := range g.EVs {
		out := make([][]float64, rows)
		for l := range out {
			off := (k*rows + l) * slots
			out[l] = append([]float64(nil), msgs[off:off+slots]...)
		}
		r.reports[ev] = out
		h := r.hist[ev]
		if h == nil {
			h = &history{}
			r.hist[ev] = h
		}
		mean := make([]float64, slots)
		for _, row := range out {
			for t, v := range row {
				mean[t] += v / float64(rows)
			}
		}
		h.push(mean)
	}
	r.sums[busKey(r.p, g)] = append([]float64(nil), sum[:slots]...)
}

// ints records word reports, one row per vehicle.
func (r *recorder) ints(iter int, g charging.Group, msgs []uint64, slots int, sum []float64) {
	if !r.on || iter < 0 {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.iter = max(r.iter, iter)
	for k, ev := range g.EVs {
		r.words[ev] = [][]uint64{append([]uint64(nil), msgs[k*slots:(k+1)*slots]...)}
	}
	r.sums[busKey(r.p, g)] = append([]float64(nil), sum[:slots]...)
}

// masked records what the SO received and learnt of a bus in one masking
// iteration: the reports that reached it, the self-mask seeds it
// reconstructed, the corrections survivors sent, the public keys, and
// whose reports its sum counts (none if ok is false: it kept its last sum).
func (r *recorder) masked(iter int, g charging.Group, rd *maskRound, ok bool, slots int, sum []float64, pk [][]byte) {
	if !r.on || iter < 0 {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.iter = max(r.iter, iter)
	out := map[int]bool{}
	for _, k := range rd.dropped {
		out[k] = true
	}
	for k, ev := range g.EVs {
		r.keys[ev] = pk[k]
		r.inSum[ev] = ok && rd.reported[k] && !out[k]
		delete(r.words, ev)
		delete(r.seeds, ev)
		delete(r.corr, ev)
		if rd.reported[k] {
			r.words[ev] = [][]uint64{rd.y[k][:slots]}
		}
		if s, ok := rd.revealed[k]; ok {
			r.seeds[ev] = s[:]
		}
		if c := rd.corrections[k]; c != nil {
			r.corr[ev] = c
		}
	}
	r.sums[busKey(r.p, g)] = append([]float64(nil), sum[:slots]...)
}

func (r *recorder) view(known map[string]map[string]float64, params ...map[string]float64) *View {
	if !r.on || r.iter < 0 {
		return nil
	}
	v := &View{Mechanism: r.name, Iteration: r.iter, Slots: r.p.Slots, Reports: r.reports, Words: r.words, Known: known, BusSums: r.sums,
		PublicKeys: r.keys, Seeds: r.seeds, Corrections: r.corr, InSum: r.inSum}
	if len(params) > 0 {
		v.Params = params[0]
	}
	v.History = map[int][]float64{}
	for ev, h := range r.hist {
		v.History[ev] = h.mean()
	}
	if v.Known == nil {
		v.Known = map[string]map[string]float64{}
	}
	return v
}

// HistoryWindow is how many past iterations of a vehicle's messages the
// recorder keeps for attackers that average over iterations.
const HistoryWindow = 20

// history is a ring of a vehicle's per-iteration message means.
type history struct {
	rows [][]float64
	next int
}

func (h *history) push(row []float64) {
	if len(h.rows) < HistoryWindow {
		h.rows = append(h.rows, row)
		return
	}
	h.rows[h.next] = row
	h.next = (h.next + 1) % HistoryWindow
}

// mean averages the kept iterations.
func (h *history) mean() []float64 {
	if h == nil || len(h.rows) == 0 {
		return nil
	}
	out := make([]float64, len(h.rows[0]))
	for _, r := range h.rows {
		for t, v := range r {
			out[t] += v / float64(len(h.rows))
		}
	}
	return out
}
