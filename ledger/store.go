package ledger

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// The application's durable state is a bbolt database, app/state.db: one
// record per leaf of the app hash (commit.go), holding exactly the
// canonical JSON the leaf hashes, and a meta record with the hash and its
// commitment version. Commit writes the leaves the block changed in one
// transaction, synced (fdatasync) before it returns, so a block costs
// what it changed, not what the state holds, and after a crash the file
// holds the state of some commit as a whole, never a mix of two. Before,
// the whole state was written as one JSON file at every Commit (issue 18).
const (
	storeFile   = "state.db"
	legacyFile  = "state.json" // the earlier whole-state file, imported once
	leafBucket  = "leaves"
	metaBucket  = "meta"
	metaHash    = "hash"
	metaVersion = "commitment_version"
)

// stateDB is the open state.db.
type stateDB struct {
	db   *bolt.DB
	path string
}

// openStore opens (or creates) dir/state.db. A second process on the same
// directory is refused by bbolt's file lock.
func openStore(dir string) (*stateDB, error) {
	path := filepath.Join(dir, storeFile)
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 2 * time.Second, FreelistType: bolt.FreelistMapType})
	if err != nil {
		if errors.Is(err, bolterrors.ErrTimeout) {
			return nil, fmt.Errorf("ledger: %s is locked by another process: is another node running on this home? stop it first", path)
		}
		return nil, fmt.Errorf("ledger: opening the state %s: %w (if it is damaged, restore app/ from a backup or another validator, or remove it to replay the chain from genesis)", path, err)
	}
	return &stateDB{db: db, path: path}, nil
}

func (st *stateDB) close() error { return st.db.Close() }

// load reads the committed state and its recorded hash; a database never
// committed to gives nil, nil.
func (st *stateDB) load() (*State, []byte, error) {
	var s *State
	var hash []byte
	err := st.db.View(func(tx *bolt.Tx) error {
		meta, leaves := tx.Bucket([]byte(metaBucket)), tx.Bucket([]byte(leafBucket))
		if meta == nil || leaves == nil || meta.Get([]byte(metaHash)) == nil {
			return nil
		}
		hash = bytes.Clone(meta.Get([]byte(metaHash)))
		if v, _ := strconv.Atoi(string(meta.Get([]byte(metaVersion)))); v != commitVersion {
			return fmt.Errorf("ledger: %s has state commitment version %q, this gridveil computes version %d: it was written by another gridveil version; run that version, or start a new chain (a new home)", st.path, meta.Get([]byte(metaVersion)), commitVersion)
		}
		var err error
		s, err = stateFromLeaves(leaves.ForEach)
		if err != nil {
			return fmt.Errorf("ledger: %s is damaged (%v); restore app/ from a backup or from another validator, or remove it to replay the chain from genesis", st.path, err)
		}
		return nil
	})
	return s, hash, err
}

// write applies one commit: changed leaves (a nil value deletes the
// leaf) and the new hash, in one synced transaction.
func (st *stateDB) write(changed map[string][]byte, hash []byte) error {
	err := st.db.Update(func(tx *bolt.Tx) error {
		leaves, err := tx.CreateBucketIfNotExists([]byte(leafBucket))
		if err != nil {
			return err
		}
		meta, err := tx.CreateBucketIfNotExists([]byte(metaBucket))
		if err != nil {
			return err
		}
		// In key order: bbolt inserts into a sorted page, so keys in
		// random (map) order cost a move of the page's tail each, which
		// made the first commit of a 10^5-station genesis quadratic.
		for _, k := range slices.Sorted(maps.Keys(changed)) {
			v := changed[k]
			if v == nil {
				err = leaves.Delete([]byte(k))
			} else {
				err = leaves.Put([]byte(k), v)
			}
			if err != nil {
				return err
			}
		}
		if err := meta.Put([]byte(metaVersion), []byte(strconv.Itoa(commitVersion))); err != nil {
			return err
		}
		return meta.Put([]byte(metaHash), hash)
	})
	if err != nil {
		return fmt.Errorf("ledger: writing the state to %s: %w", st.path, err)
	}
	return nil
}

// legacyState is the earlier state.json: the whole state, its hash, and
// the commitment version.
type legacyState struct {
	State   *State `json:"state"`
	Hash    []byte `json:"hash"`
	Version int    `json:"commitment_version"`
}

// readLegacy reads dir/state.json if there is one (nil, nil, nil if not).
func readLegacy(dir string) (*State, []byte, error) {
	data, err := os.ReadFile(filepath.Join(dir, legacyFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("ledger: reading state: %w", err)
	}
	var f legacyState
	if err := json.Unmarshal(data, &f); err != nil || f.State == nil {
		return nil, nil, fmt.Errorf("ledger: state.json in %s is corrupt (%v); restore it from a backup or start a new chain", dir, err)
	}
	if f.Version != commitVersion {
		return nil, nil, fmt.Errorf("ledger: state.json in %s has state commitment version %d, this gridveil computes version %d: it was written by another gridveil version; run that version, or start a new chain (a new home)", dir, f.Version, commitVersion)
	}
	return f.State, f.Hash, nil
}
