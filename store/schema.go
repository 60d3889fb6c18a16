package store

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// SchemaVersion is the layout this build writes. Stores of an older version
// are migrated on Open; newer ones are refused.
const SchemaVersion = 2

// A migration upgrades a store from schema version From to From+1, inside
// the one transaction that also records the new version.
type migration struct {
	From  uint32
	About string
	Apply func(tx *bolt.Tx) error
}

// migrations lists every upgrade in order. A change of layout adds an entry
// here and bumps SchemaVersion.
var migrations = []migration{
	{From: 1, About: "per-executor report counts committed with the reports", Apply: func(tx *bolt.Tx) error {
		c, err := tx.CreateBucket(bucketCounters)
		if err != nil {
			return err
		}
		// Derive the counts from the trace log, which a crash never left
		// behind the acknowledgements (the records' own counts were written
		// about once a second); a count above it (traces deleted by
		// retention) is kept.
		counts := map[string]uint64{}
		err = tx.Bucket(bucketTraces).ForEach(func(k, v []byte) error {
			bl, err := decodeBlock(k, v)
			if err != nil {
				return err
			}
			for i, e := range bl.entries {
				t, err := DecodeTrace(bl.first+uint64(i), e)
				if err != nil {
					return err
				}
				counts[t.Executor]++
			}
			return nil
		})
		if err != nil {
			return err
		}
		return tx.Bucket(bucketExecutors).ForEach(func(k, v []byte) error {
			var e Executor
			if err := json.Unmarshal(v, &e); err != nil {
				return fmt.Errorf("%w: executors/%s: %v", ErrCorruptRecord, k, err)
			}
			return c.Put(k, be64(max(e.Reports, counts[e.ID])))
		})
	}},
}

// checkIdentity refuses a file that is not a dyno store, is too new, or
// lacks a bucket of its schema. A bbolt file with no bucket at all is
// empty (it reports true) and may become one.
func checkIdentity(tx *bolt.Tx) (empty bool, err error) {
	meta := tx.Bucket(bucketMeta)
	if meta == nil {
		empty := true
		_ = tx.ForEach(func([]byte, *bolt.Bucket) error { empty = false; return nil })
		if empty {
			return true, nil
		}
		return false, fmt.Errorf("%w: a bbolt file without dyno's %q bucket", ErrNotStore, bucketMeta)
	}
	if m := meta.Get(metaMagic); string(m) != magic {
		return false, fmt.Errorf("%w: magic %q, want %q", ErrNotStore, m, magic)
	}
	v, err := schemaOf(meta)
	if err != nil {
		return false, err
	}
	if v > SchemaVersion {
		return false, fmt.Errorf("%w: the file has schema %d, this build reads up to %d: run a newer dyno-controller", ErrSchemaTooNew, v, SchemaVersion)
	}
	for _, name := range bucketsOf(v) {
		if tx.Bucket(name) == nil {
			return false, fmt.Errorf("%w: the %q bucket of schema %d is missing", ErrCorrupt, name, v)
		}
	}
	return false, nil
}

// bucketsOf lists the top-level buckets a store of schema v has.
func bucketsOf(v uint32) [][]byte {
	if v < 2 {
		return allBuckets[:len(allBuckets)-1] // no counters before schema 2
	}
	return allBuckets
}

func schemaOf(meta *bolt.Bucket) (uint32, error) {
	b := meta.Get(metaSchema)
	if len(b) != 4 {
		return 0, fmt.Errorf("%w: meta/schema is %d bytes", ErrCorrupt, len(b))
	}
	return binary.BigEndian.Uint32(b), nil
}

// init creates the buckets of a new store, or migrates an old one.
func (s *Store) init() error {
	// A store of this schema is not written on Open: a commit would change
	// the file (its meta page) for nothing.
	current := false
	if err := s.db.View(func(tx *bolt.Tx) error {
		empty, err := checkIdentity(tx)
		if err == nil && !empty {
			v, _ := schemaOf(tx.Bucket(bucketMeta))
			current = v == SchemaVersion
		}
		return err
	}); err != nil || current {
		return err
	}
	return s.db.Update(func(tx *bolt.Tx) error {
		if _, err := checkIdentity(tx); err != nil {
			return err
		}
		meta := tx.Bucket(bucketMeta)
		if meta == nil {
			for _, name := range allBuckets {
				if _, err := tx.CreateBucketIfNotExists(name); err != nil {
					return err
				}
			}
			meta = tx.Bucket(bucketMeta)
			now := make([]byte, 8)
			binary.BigEndian.PutUint64(now, uint64(time.Now().UnixNano()))
			if err := meta.Put(metaMagic, []byte(magic)); err != nil {
				return err
			}
			if err := meta.Put(metaCreated, now); err != nil {
				return err
			}
			return putSchema(meta, SchemaVersion)
		}
		return migrate(tx, migrations, SchemaVersion)
	})
}

func putSchema(meta *bolt.Bucket, v uint32) error {
	b := make([]byte, 4)
	binary.BigEndian.PutUint32(b, v)
	return meta.Put(metaSchema, b)
}

// migrate runs every migration from the file's schema up to target in tx.
func migrate(tx *bolt.Tx, ms []migration, target uint32) error {
	meta := tx.Bucket(bucketMeta)
	v, err := schemaOf(meta)
	if err != nil {
		return err
	}
	for v < target {
		var m *migration
		for i := range ms {
			if ms[i].From == v {
				m = &ms[i]
			}
		}
		if m == nil {
			return fmt.Errorf("store: no migration from schema %d to %d", v, v+1)
		}
		if err := m.Apply(tx); err != nil {
			return fmt.Errorf("store: migrate schema %d to %d (%s): %w", v, v+1, m.About, err)
		}
		v++
		if err := putSchema(meta, v); err != nil {
			return err
		}
	}
	return nil
}

// Schema returns the schema version of the open store.
func (t *Tx) Schema() uint32 {
	v, _ := schemaOf(t.bucket(bucketMeta))
	return v
}

// ReplayFrom is the first trace sequence number whose effect on the bandit
// state may not be in the State records yet (see PutReplayFrom); zero if
// never set.
func (t *Tx) ReplayFrom() uint64 {
	b := t.bucket(bucketMeta).Get(metaReplayFrom)
	if len(b) != 8 {
		return 0
	}
	return binary.BigEndian.Uint64(b)
}

// PutReplayFrom records where a restart must start replaying the trace log
// into the bandit state: every trace below seq is reflected in some State.
func (t *Tx) PutReplayFrom(seq uint64) error {
	return t.bucket(bucketMeta).Put(metaReplayFrom, be64(seq))
}

func be64(v uint64) []byte {
	b := make([]byte, 8)
	binary.BigEndian.PutUint64(b, v)
	return b
}
