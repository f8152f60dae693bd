package ledger

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
)

// The application hash commits to the state as a sorted set of leaves, one
// per key: "g" (params and grid model, fixed at genesis), "m" (height,
// time, order sequence), "a:<account>", "r:<station>" (reputation),
// "v:<station>" (validator), "w:<window>" (a window without its orders)
// and "o:<window>:<index>" (one order). A leaf is SHA-256 of
// "gridveil-leaf" || key || 0 || canonical JSON of the value; the root is
// SHA-256 of "gridveil-state-v2" and every (key length, key, leaf) in key
// order. A block re-encodes only the leaves it touched, instead of the
// whole state: the cost of a block follows what it changed, not how big
// the state is (issue 18).

// commitVersion is recorded in state.json next to the hash so that a
// file hashed another way is recognised as such instead of as tampered.
const commitVersion = 2

// commitment holds the leaf hashes of a state and the keys touched since
// they were last brought up to date.
type commitment struct {
	leaves map[string][32]byte
	sorted []string            // keys of leaves, ascending
	dirty  map[string]struct{} // touched since the last root
	// changed holds, for every leaf re-hashed since the state was last
	// written to disk, its new value (nil: the leaf is gone): what the
	// next Commit writes (store.go).
	changed map[string][]byte
}

// takeChanges returns the leaves changed since the last call and forgets
// them.
func (c *commitment) takeChanges() map[string][]byte {
	ch := c.changed
	c.changed = map[string][]byte{}
	return ch
}

// touch records that the value under key may have changed. Before the
// first Hash there is nothing to update: that Hash builds every leaf.
func (s *State) touch(key string) {
	if s.commit != nil {
		s.commit.dirty[key] = struct{}{}
	}
}

func accountKey(k string) string { return "a:" + k }
func windowKey(w int64) string   { return "w:" + strconv.FormatInt(w, 10) }
func orderKey(w int64, i int) string {
	return "o:" + strconv.FormatInt(w, 10) + ":" + strconv.Itoa(i)
}

// touchStation marks everything of a station a block can change.
func (s *State) touchStation(k string) {
	s.touch(accountKey(k))
	s.touch("r:" + k)
	s.touch("v:" + k)
}

// Hash is the application hash (see above). It updates the touched leaves
// and is deterministic: every node that applied the same blocks gets the
// same bytes, however its leaves were built.
func (s *State) Hash() []byte {
	if s.commit == nil {
		s.commit = s.buildCommitment()
	} else {
		s.refresh()
	}
	return s.commit.root()
}

// fullHash recomputes the commitment from nothing: what a loaded state is
// checked with, and what tests compare the incremental one against.
func (s *State) fullHash() []byte { return s.buildCommitment().root() }

// allKeys lists every key of the state's leaves, unsorted.
func (s *State) allKeys() []string {
	keys := []string{"g", "m"}
	for k := range s.Accounts {
		keys = append(keys, accountKey(k))
	}
	for k := range s.Reputation {
		keys = append(keys, "r:"+k)
	}
	for k := range s.Validators {
		keys = append(keys, "v:"+k)
	}
	for w, win := range s.Windows {
		keys = append(keys, windowKey(w))
		for i := range win.Orders {
			keys = append(keys, orderKey(w, i))
		}
	}
	return keys
}

func (s *State) buildCommitment() *commitment {
	keys := s.allKeys()
	slices.Sort(keys)
	c := &commitment{leaves: make(map[string][32]byte, len(keys)), sorted: keys, dirty: map[string]struct{}{}, changed: make(map[string][]byte, len(keys))}
	for _, k := range keys {
		v, _ := s.leafValue(k)
		c.leaves[k] = leafHash(k, v)
		c.changed[k] = v
	}
	return c
}

// refresh re-hashes the touched leaves, drops the ones whose value is
// gone, and merges new keys into the sorted list.
func (s *State) refresh() {
	c := s.commit
	if len(c.dirty) == 0 {
		return
	}
	var added []string
	removed := false
	for k := range c.dirty {
		v, ok := s.leafValue(k)
		_, had := c.leaves[k]
		switch {
		case ok:
			c.leaves[k] = leafHash(k, v)
			c.changed[k] = v
			if !had {
				added = append(added, k)
			}
		case had:
			delete(c.leaves, k)
			c.changed[k] = nil
			removed = true
		}
	}
	clear(c.dirty)
	if removed {
		c.sorted = slices.DeleteFunc(c.sorted, func(k string) bool { _, ok := c.leaves[k]; return !ok })
	}
	if len(added) > 0 {
		slices.Sort(added)
		c.sorted = mergeSorted(c.sorted, added)
	}
}

func mergeSorted(a, b []string) []string {
	out := make([]string, 0, len(a)+len(b))
	i, j := 0, 0
	for i < len(a) && j < len(b) {
		if a[i] < b[j] {
			out = append(out, a[i])
			i++
		} else {
			out = append(out, b[j])
			j++
		}
	}
	out = append(out, a[i:]...)
	return append(out, b[j:]...)
}

func (c *commitment) root() []byte {
	h := sha256.New()
	h.Write([]byte("gridveil-state-v2"))
	var n [4]byte
	for _, k := range c.sorted {
		binary.BigEndian.PutUint32(n[:], uint32(len(k)))
		h.Write(n[:])
		h.Write([]byte(k))
		leaf := c.leaves[k]
		h.Write(leaf[:])
	}
	return h.Sum(nil)
}

func leafHash(key string, value []byte) [32]byte {
	h := sha256.New()
	h.Write([]byte("gridveil-leaf"))
	h.Write([]byte(key))
	h.Write([]byte{0})
	h.Write(value)
	var out [32]byte
	h.Sum(out[:0])
	return out
}

// leafValue is the canonical JSON encoding of the value under key, and
// whether it exists (encoding/json sorts map keys, so every node gets the
// same bytes).
func (s *State) leafValue(key string) ([]byte, bool) {
	var v any
	switch {
	case key == "g":
		v = struct {
			Params Params     `json:"params"`
			Grid   *GridModel `json:"grid,omitempty"`
		}{s.Params, s.Grid}
	case key == "m":
		v = struct {
			Height int64  `json:"height"`
			Time   int64  `json:"time_ms"`
			Seq    uint64 `json:"seq"`
		}{s.Height, s.Time, s.Seq}
	case strings.HasPrefix(key, "a:"):
		a := s.Accounts[key[2:]]
		if a == nil {
			return nil, false
		}
		v = a
	case strings.HasPrefix(key, "r:"):
		r, ok := s.Reputation[key[2:]]
		if !ok {
			return nil, false
		}
		v = r
	case strings.HasPrefix(key, "v:"):
		val := s.Validators[key[2:]]
		if val == nil {
			return nil, false
		}
		v = val
	case strings.HasPrefix(key, "w:"):
		w, err := strconv.ParseInt(key[2:], 10, 64)
		win := s.Windows[w]
		if err != nil || win == nil {
			return nil, false
		}
		c := *win
		c.Orders = nil // each order is its own leaf
		v = c
	case strings.HasPrefix(key, "o:"):
		ws, is, _ := strings.Cut(key[2:], ":")
		w, err1 := strconv.ParseInt(ws, 10, 64)
		i, err2 := strconv.Atoi(is)
		win := s.Windows[w]
		if err1 != nil || err2 != nil || win == nil || i < 0 || i >= len(win.Orders) {
			return nil, false
		}
		v = win.Orders[i]
	default:
		return nil, false
	}
	data, _ := json.Marshal(v) // plain data: it always encodes
	return data, true
}

// Clone is a deep copy of the state: what the mempool checks against and
// what App.State hands out. It copies field by field (a JSON round trip
// cost more than the block's transactions) and leaves the commitment
// behind: neither copy is ever hashed by the application, and the leaf
// hashes were a third of the copy's cost at 10^4 stations. A clone's Hash
// builds its commitment afresh. The grid model is shared: nothing changes
// it after genesis.
func (s *State) Clone() *State {
	c := *s
	c.Accounts = make(map[string]*Account, len(s.Accounts))
	for k, a := range s.Accounts {
		a := *a
		c.Accounts[k] = &a
	}
	c.Windows = make(map[int64]*Window, len(s.Windows))
	for w, win := range s.Windows {
		d := *win
		d.Demand = maps.Clone(win.Demand)
		d.Rights = maps.Clone(win.Rights)
		d.Slack = maps.Clone(win.Slack)
		d.Congestion = maps.Clone(win.Congestion)
		d.Orders = slices.Clone(win.Orders)
		d.Trades = slices.Clone(win.Trades)
		d.Failed = slices.Clone(win.Failed)
		d.Reduced = slices.Clone(win.Reduced)
		d.Contracts = slices.Clone(win.Contracts)
		c.Windows[w] = &d
	}
	c.Reputation = maps.Clone(s.Reputation)
	if s.Validators != nil {
		c.Validators = make(map[string]*Validator, len(s.Validators))
		for k, v := range s.Validators {
			v := *v
			v.PubKey = slices.Clone(v.PubKey)
			c.Validators[k] = &v
		}
	}
	c.updates = slices.Clone(s.updates)
	c.commit = nil
	return &c
}

// stateFromLeaves is leafValue's inverse: it rebuilds a state from every
// (key, value) pair of its leaves, in any order, as state.db stores them.
// The caller checks the result against the recorded hash, which also
// catches a value that decodes but does not re-encode to the same bytes.
func stateFromLeaves(each func(func(k, v []byte) error) error) (*State, error) {
	s := &State{Accounts: map[string]*Account{}, Windows: map[int64]*Window{}, Reputation: map[string]int64{}}
	orders := map[int64]map[int]Order{}
	seen := map[string]bool{}
	err := each(func(kb, v []byte) error {
		k := string(kb)
		var err error
		switch {
		case k == "g":
			var g struct {
				Params Params     `json:"params"`
				Grid   *GridModel `json:"grid,omitempty"`
			}
			err = json.Unmarshal(v, &g)
			s.Params, s.Grid = g.Params, g.Grid
		case k == "m":
			var m struct {
				Height int64  `json:"height"`
				Time   int64  `json:"time_ms"`
				Seq    uint64 `json:"seq"`
			}
			err = json.Unmarshal(v, &m)
			s.Height, s.Time, s.Seq = m.Height, m.Time, m.Seq
		case strings.HasPrefix(k, "a:"):
			var a Account
			err = json.Unmarshal(v, &a)
			s.Accounts[k[2:]] = &a
		case strings.HasPrefix(k, "r:"):
			var r int64
			err = json.Unmarshal(v, &r)
			s.Reputation[k[2:]] = r
		case strings.HasPrefix(k, "v:"):
			var val Validator
			err = json.Unmarshal(v, &val)
			if s.Validators == nil {
				s.Validators = map[string]*Validator{}
			}
			s.Validators[k[2:]] = &val
		case strings.HasPrefix(k, "w:"):
			w, perr := strconv.ParseInt(k[2:], 10, 64)
			if perr != nil {
				return fmt.Errorf("leaf %q: not a window index", k)
			}
			var win Window
			err = json.Unmarshal(v, &win)
			s.Windows[w] = &win
		case strings.HasPrefix(k, "o:"):
			ws, is, _ := strings.Cut(k[2:], ":")
			w, err1 := strconv.ParseInt(ws, 10, 64)
			i, err2 := strconv.Atoi(is)
			if err1 != nil || err2 != nil || i < 0 {
				return fmt.Errorf("leaf %q: not a window and order index", k)
			}
			var o Order
			err = json.Unmarshal(v, &o)
			if orders[w] == nil {
				orders[w] = map[int]Order{}
			}
			orders[w][i] = o
		default:
			return fmt.Errorf("unknown leaf %q", k)
		}
		if err != nil {
			return fmt.Errorf("leaf %q: %v", k, err)
		}
		seen[k] = true
		return nil
	})
	if err != nil {
		return nil, err
	}
	if !seen["g"] || !seen["m"] {
		return nil, fmt.Errorf("the params (g) or height (m) leaf is missing")
	}
	for w, os := range orders {
		win := s.Windows[w]
		if win == nil {
			return nil, fmt.Errorf("orders of window %d without the window", w)
		}
		win.Orders = make([]Order, len(os))
		for i, o := range os {
			if i >= len(os) {
				return nil, fmt.Errorf("window %d: order %d of %d: the orders are not numbered 0..n-1", w, i, len(os))
			}
			win.Orders[i] = o
		}
	}
	return s, nil
}
