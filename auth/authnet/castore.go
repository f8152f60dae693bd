package authnet

import (
	"errors"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/gridveil/gridveil/auth"
)

// caDBFile is the CA's durable state: a bbolt database (one file, B+tree,
// copy-on-write pages), a table of auth.CATables per bucket. Each commit
// is one transaction, synced to the disk (fdatasync) before Update
// returns, so a record is either wholly there after a crash or not at all,
// and a change costs what its records cost, not what the state holds.
const caDBFile = "state.db"

// caDB is the CA's store of records.
type caDB struct {
	db *bolt.DB
}

// openCADB opens (or creates) the CA's database. A second CA on the same
// data directory is refused: bbolt locks the file.
func openCADB(store *Store) (*caDB, error) {
	path := store.Path(caDBFile)
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 2 * time.Second, FreelistType: bolt.FreelistMapType})
	if err != nil {
		if errors.Is(err, bolterrors.ErrTimeout) {
			return nil, fmt.Errorf("%s is locked by another process: is another CA running on this data directory? stop it first: %w", path, err)
		}
		return nil, fmt.Errorf("opening the CA's state %s: %w", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, t := range auth.CATables() {
			if _, err := tx.CreateBucketIfNotExists([]byte(t)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("preparing the CA's state %s: %w", path, err)
	}
	return &caDB{db: db}, nil
}

// empty reports whether the database was never written (no meta record).
func (d *caDB) empty() bool {
	empty := true
	_ = d.db.View(func(tx *bolt.Tx) error {
		empty = tx.Bucket([]byte(auth.TableMeta)).Get([]byte("ca")) == nil
		return nil
	})
	return empty
}

// scan calls fn on every record of a table, in key order.
func (d *caDB) scan(table string, fn func(k, v []byte) error) error {
	return d.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte(table))
		if b == nil {
			return fmt.Errorf("CA state: no table %s", table)
		}
		return b.ForEach(fn)
	})
}

// write applies records in one transaction and syncs it to the disk.
func (d *caDB) write(recs []auth.Record) error {
	err := d.db.Update(func(tx *bolt.Tx) error {
		for _, r := range recs {
			b := tx.Bucket([]byte(r.Table))
			if b == nil {
				return fmt.Errorf("no table %s", r.Table)
			}
			var err error
			if r.Value == nil {
				err = b.Delete(r.Key)
			} else {
				err = b.Put(r.Key, r.Value)
			}
			if err != nil {
				return fmt.Errorf("table %s: %w", r.Table, err)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("writing the CA's state: %w", err)
	}
	return nil
}

func (d *caDB) close() error { return d.db.Close() }
