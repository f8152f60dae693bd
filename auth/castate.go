package auth

import (
	"encoding/binary"
	"fmt"
	"sort"
	"time"

	"github.com/gridveil/gridveil/auth/wire"
)

// The CA's durable state as records. The core keeps its state in memory and
// notes what each step changed; the shell (authnet) takes those changes
// (TakeChanges) and writes them to its store, on disk, before it sends the
// step's answers, so that nothing the CA confirmed is lost in a crash. A
// change costs one record whatever the size of the state, and records no
// longer needed are deleted (Expire), so the store holds what matters now.

// Tables of the CA's durable state. A record's key is unique in its table.
const (
	// TableMeta holds one record (key "ca"): LAG serial counter, revocation
	// list version and time.
	TableMeta = "meta"
	// TableVehicles holds one record per enrolled vehicle, keyed by its
	// index (big-endian uint32, dense from 0): identity, group, keys, ring
	// index, revocation, billing.
	TableVehicles = "vehicles"
	// TableSerials holds one record per certified pseudonym still listed
	// (CA.listedUntil): its vehicle, expiry and whether it was used.
	TableSerials = "serials"
	// TableLAGs holds one record per LAG: its latest certificate and
	// whether it is revoked.
	TableLAGs = "lags"
	// TableGroups holds each group's key list version.
	TableGroups = "groups"
)

// CATables lists the tables, in the order RestoreCAFrom reads them.
func CATables() []string {
	return []string{TableMeta, TableVehicles, TableSerials, TableLAGs, TableGroups, TableCredentials}
}

// A Record is one entry of the CA's durable state. A nil Value deletes it.
type Record struct {
	Table string
	Key   []byte
	Value []byte
}

// recordVersion leads every record's value, for future layouts.
const recordVersion = 1

// dirtySet is what changed in the CA's durable state since TakeChanges.
type dirtySet struct {
	meta    bool
	bvs     map[int]bool
	serials map[[16]byte]bool
	lags    map[string]bool
	groups  map[string]bool
	creds   map[[32]byte]bool
}

func (d *dirtySet) empty() bool {
	return !d.meta && len(d.bvs) == 0 && len(d.serials) == 0 && len(d.lags) == 0 && len(d.groups) == 0 && len(d.creds) == 0
}

func (c *CA) markBV(i int) {
	if c.dirty.bvs == nil {
		c.dirty.bvs = map[int]bool{}
	}
	c.dirty.bvs[i] = true
}

func (c *CA) markSerial(s [16]byte) {
	if c.dirty.serials == nil {
		c.dirty.serials = map[[16]byte]bool{}
	}
	c.dirty.serials[s] = true
}

func (c *CA) markLAG(id string) {
	if c.dirty.lags == nil {
		c.dirty.lags = map[string]bool{}
	}
	c.dirty.lags[id] = true
}

func (c *CA) markGroup(g string) {
	if c.dirty.groups == nil {
		c.dirty.groups = map[string]bool{}
	}
	c.dirty.groups[g] = true
}

// Changed reports whether the CA's durable state changed since the last
// TakeChanges.
func (c *CA) Changed() bool { return !c.dirty.empty() }

// TakeChanges returns the records that changed since the last call, in a
// deterministic order, and forgets them. The shell must write them to disk
// before it sends the frames of the outputs that made them: those frames
// confirm the changes.
func (c *CA) TakeChanges() []Record {
	d := c.dirty
	c.dirty = dirtySet{}
	if d.empty() {
		return nil
	}
	var out []Record
	if d.meta {
		out = append(out, c.metaRecord())
	}
	bvs := make([]int, 0, len(d.bvs))
	for i := range d.bvs {
		bvs = append(bvs, i)
	}
	sort.Ints(bvs)
	for _, i := range bvs {
		out = append(out, c.bvRecordOf(i))
	}
	serials := make([][16]byte, 0, len(d.serials))
	for s := range d.serials {
		serials = append(serials, s)
	}
	sort.Slice(serials, func(i, j int) bool { return string(serials[i][:]) < string(serials[j][:]) })
	for _, s := range serials {
		out = append(out, c.serialRecord(s))
	}
	out = append(out, c.lagRecords(d.lags)...)
	groups := make([]string, 0, len(d.groups))
	for g := range d.groups {
		groups = append(groups, g)
	}
	sort.Strings(groups)
	for _, g := range groups {
		out = append(out, c.groupRecord(g))
	}
	return append(out, c.credRecords(d.creds)...)
}

// Records returns the whole durable state as records (to fill a new store
// from a CA restored another way, e.g. from an old state.json), and
// forgets pending changes, which it includes.
func (c *CA) Records() []Record {
	c.dirty = dirtySet{meta: true, bvs: map[int]bool{}, serials: map[[16]byte]bool{}, lags: map[string]bool{}, groups: map[string]bool{}, creds: map[[32]byte]bool{}}
	for i := range c.bvs {
		c.dirty.bvs[i] = true
	}
	for s := range c.serials {
		c.dirty.serials[s] = true
	}
	for id := range c.lags {
		c.dirty.lags[id] = true
	}
	for g := range c.groupVer {
		c.dirty.groups[g] = true
	}
	for h := range c.creds {
		c.dirty.creds[h] = true
	}
	return c.TakeChanges()
}

func (c *CA) metaRecord() Record {
	v := wire.NewBuilder(nil).U8(recordVersion).U64(c.lagSerial).U64(c.crlVersion).I64(c.revokedAt).Out()
	return Record{Table: TableMeta, Key: []byte("ca"), Value: v}
}

func bvKey(i int) []byte { return binary.BigEndian.AppendUint32(nil, uint32(i)) }

func (c *CA) bvRecordOf(i int) Record {
	r := c.bvs[i]
	revoked := uint8(0)
	if r.Revoked {
		revoked = 1
	}
	v := wire.NewBuilder(nil).U8(recordVersion).String(r.RealID).String(r.Group).Fixed(r.IdentityKey[:]).Fixed(r.RingKey[:]).
		U32(r.RingIndex).U8(revoked).I64(r.EnergyWh).I64(r.Discharged).Out()
	return Record{Table: TableVehicles, Key: bvKey(i), Value: v}
}

func (c *CA) serialRecord(s [16]byte) Record {
	info := c.serials[s]
	if info == nil {
		return Record{Table: TableSerials, Key: s[:]}
	}
	used := uint8(0)
	if info.used {
		used = 1
	}
	v := wire.NewBuilder(nil).U8(recordVersion).U32(uint32(info.bv)).I64(info.notAfter).U8(used).Out()
	return Record{Table: TableSerials, Key: append([]byte(nil), s[:]...), Value: v}
}

func (c *CA) lagRecords(ids map[string]bool) []Record {
	names := make([]string, 0, len(ids))
	for id := range ids {
		names = append(names, id)
	}
	sort.Strings(names)
	out := make([]Record, 0, len(names))
	for _, id := range names {
		l := c.lags[id]
		if l == nil {
			out = append(out, Record{Table: TableLAGs, Key: []byte(id)})
			continue
		}
		revoked := uint8(0)
		if l.revoked {
			revoked = 1
		}
		v := wire.NewBuilder(nil).U8(recordVersion).Bytes(l.cert.Marshal()).U8(revoked).Out()
		out = append(out, Record{Table: TableLAGs, Key: []byte(id), Value: v})
	}
	return out
}

func (c *CA) groupRecord(g string) Record {
	return Record{Table: TableGroups, Key: []byte(g), Value: wire.NewBuilder(nil).U8(recordVersion).U64(c.groupVer[g]).Out()}
}

// Expire forgets what the CA no longer needs, and returns (through
// TakeChanges) the deletions: pseudonym serials past CA.listedUntil (they
// can never be used again, and their tickets are dead), and sessions whose
// lease (the permit's lifetime) ended. A session still active at the end of
// its lease is ended: its LAG ends it at the same time (LAG.Tick), and
// keeping it would lock its vehicle out as a clone.
func (c *CA) Expire(now time.Time) Output {
	var out Output
	t := now.Unix()
	for s, info := range c.serials {
		if c.listedUntil(info) <= t {
			delete(c.serials, s)
			c.markSerial(s)
		}
	}
	for b, s := range c.sessions {
		if s.notAfter != 0 && s.notAfter <= t {
			if r := c.bvs[s.bv]; r.active[b] != "" {
				delete(r.active, b)
				out.event(0, "session-end", "session %x of %q at %q: lease ended", b[:4], r.RealID, s.lag)
			}
			delete(c.sessions, b)
		}
	}
	return out
}

// RestoreCAFrom rebuilds a CA from its keys and the records of its store.
// scan calls fn on every record of a table, in key order; RestoreCAFrom
// reads the tables in CATables order. A record that does not decode is an
// error that names it: a store is never half read.
func RestoreCAFrom(keys *CAKeys, cfg CAConfig, scan func(table string, fn func(key, value []byte) error) error) (*CA, error) {
	c, err := NewCA(keys, cfg)
	if err != nil {
		return nil, err
	}
	bad := func(table string, key []byte, err error) error {
		return fmt.Errorf("%w: CA state, table %s, record %x: %w", ErrMalformed, table, key, err)
	}
	err = scan(TableMeta, func(k, v []byte) error {
		r := wire.NewReader(v)
		if r.U8() != recordVersion {
			return bad(TableMeta, k, fmt.Errorf("record version"))
		}
		c.lagSerial, c.crlVersion, c.revokedAt = r.U64(), r.U64(), r.I64()
		if err := r.Finish(); err != nil {
			return bad(TableMeta, k, err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	err = scan(TableVehicles, func(k, v []byte) error {
		if len(k) != 4 || int(binary.BigEndian.Uint32(k)) != len(c.bvs) {
			return bad(TableVehicles, k, fmt.Errorf("vehicle index out of sequence (want %d)", len(c.bvs)))
		}
		rd := wire.NewReader(v)
		if rd.U8() != recordVersion {
			return bad(TableVehicles, k, fmt.Errorf("record version"))
		}
		r := &bvRecord{RealID: rd.String(MaxID), Group: rd.String(MaxID)}
		rd.FixedInto(r.IdentityKey[:])
		rd.FixedInto(r.RingKey[:])
		r.RingIndex = rd.U32()
		r.Revoked = rd.U8() == 1
		r.EnergyWh, r.Discharged = rd.I64(), rd.I64()
		if err := rd.Finish(); err != nil {
			return bad(TableVehicles, k, err)
		}
		return c.addRestored(r)
	})
	if err != nil {
		return nil, err
	}
	err = scan(TableSerials, func(k, v []byte) error {
		rd := wire.NewReader(v)
		if len(k) != 16 || rd.U8() != recordVersion {
			return bad(TableSerials, k, fmt.Errorf("key or record version"))
		}
		info := &serialInfo{bv: int(rd.U32()), notAfter: rd.I64(), used: rd.U8() == 1}
		if err := rd.Finish(); err != nil {
			return bad(TableSerials, k, err)
		}
		if info.bv >= len(c.bvs) {
			return bad(TableSerials, k, fmt.Errorf("owner %d of %d vehicles", info.bv, len(c.bvs)))
		}
		c.serials[[16]byte(k)] = info
		c.countIssued(info.bv, info.notAfter)
		return nil
	})
	if err != nil {
		return nil, err
	}
	err = scan(TableLAGs, func(k, v []byte) error {
		rd := wire.NewReader(v)
		if rd.U8() != recordVersion {
			return bad(TableLAGs, k, fmt.Errorf("record version"))
		}
		raw := rd.Bytes(4096)
		revoked := rd.U8() == 1
		if err := rd.Finish(); err != nil {
			return bad(TableLAGs, k, err)
		}
		cert, err := ParseLAGCert(raw)
		if err != nil || cert.LAGID != string(k) {
			return bad(TableLAGs, k, fmt.Errorf("certificate: %v", err))
		}
		c.lags[cert.LAGID] = &lagRecord{cert: *cert, revoked: revoked}
		c.byNoise[cert.NoiseKey] = cert.LAGID
		return nil
	})
	if err != nil {
		return nil, err
	}
	err = scan(TableGroups, func(k, v []byte) error {
		rd := wire.NewReader(v)
		if rd.U8() != recordVersion {
			return bad(TableGroups, k, fmt.Errorf("record version"))
		}
		c.groupVer[string(k)] = rd.U64()
		if err := rd.Finish(); err != nil {
			return bad(TableGroups, k, err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	err = scan(TableCredentials, func(k, v []byte) error {
		if err := c.restoreCred(k, v); err != nil {
			return bad(TableCredentials, k, err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return c, nil
}

// addRestored appends a restored vehicle, rebuilding its group's ring.
func (c *CA) addRestored(r *bvRecord) error {
	i := len(c.bvs)
	g := c.groups[r.Group]
	if g == nil {
		g = newGroupKeys(nil, nil)
		c.groups[r.Group] = g
	}
	if int(r.RingIndex) != len(g.keys) {
		return fmt.Errorf("%w: CA state: ring index of %q", ErrMalformed, r.RealID)
	}
	if _, dup := c.byReal[r.RealID]; dup {
		return fmt.Errorf("%w: CA state: vehicle %q twice", ErrMalformed, r.RealID)
	}
	c.addRingKey(r.Group, g, r.RingKey)
	if r.Revoked {
		g.revoked[r.RingIndex] = true
	}
	c.groupOwner[r.Group] = append(c.groupOwner[r.Group], i)
	c.bvs = append(c.bvs, r)
	c.byReal[r.RealID] = i
	c.byRing[r.RingKey] = i
	return nil
}

// VehicleView is what the CA holds of one enrolled vehicle.
type VehicleView struct {
	RealID     string
	Group      string
	RingIndex  uint32
	Revoked    bool
	Serials    int // pseudonym serials still listed
	UsedSerial int // of which used
	Active     int // sessions active now
	EnergyWh   int64
	Discharged int64
}

// Vehicle returns what the CA holds of a vehicle.
func (c *CA) Vehicle(realID string) (VehicleView, bool) {
	i, ok := c.byReal[realID]
	if !ok {
		return VehicleView{}, false
	}
	r := c.bvs[i]
	v := VehicleView{RealID: r.RealID, Group: r.Group, RingIndex: r.RingIndex, Revoked: r.Revoked, Active: len(r.active),
		EnergyWh: r.EnergyWh, Discharged: r.Discharged}
	for _, info := range c.serials {
		if info.bv == i {
			v.Serials++
			if info.used {
				v.UsedSerial++
			}
		}
	}
	return v, true
}

// LAGKnown reports whether the CA holds a certificate for the LAG, and
// whether it is revoked.
func (c *CA) LAGKnown(lagID string) (known, revoked bool) {
	l := c.lags[lagID]
	if l == nil {
		return false, false
	}
	return true, l.revoked
}

// Counts returns the numbers of enrolled vehicles, listed serials and
// sessions the CA holds in memory.
func (c *CA) Counts() (vehicles, serials, sessions int) {
	return len(c.bvs), len(c.serials), len(c.sessions)
}
