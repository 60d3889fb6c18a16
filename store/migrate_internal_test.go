package store

import (
	"path/filepath"
	"testing"

	bolt "go.etcd.io/bbolt"
)

func TestMigrationsRunInOrderInOneTransaction(t *testing.T) {
	path := filepath.Join(t.TempDir(), "dyno.db")
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	var ran []uint32
	ms := []migration{
		{From: SchemaVersion + 1, About: "second", Apply: func(tx *bolt.Tx) error { ran = append(ran, SchemaVersion+1); return nil }},
		{From: SchemaVersion, About: "first", Apply: func(tx *bolt.Tx) error {
			ran = append(ran, SchemaVersion)
			_, err := tx.CreateBucket([]byte("added"))
			return err
		}},
	}
	err = s.db.Update(func(tx *bolt.Tx) error { return migrate(tx, ms, SchemaVersion+2) })
	if err != nil {
		t.Fatal(err)
	}
	if len(ran) != 2 || ran[0] != SchemaVersion || ran[1] != SchemaVersion+1 {
		t.Fatalf("ran %v", ran)
	}
	s.View(func(tx *Tx) error {
		if tx.Schema() != SchemaVersion+2 || tx.tx.Bucket([]byte("added")) == nil {
			t.Errorf("schema %d after migration", tx.Schema())
		}
		return nil
	})
	// A missing step fails and leaves the schema where it was.
	err = s.db.Update(func(tx *bolt.Tx) error { return migrate(tx, nil, SchemaVersion+3) })
	if err == nil {
		t.Fatal("migrated without a migration")
	}
	s.View(func(tx *Tx) error {
		if tx.Schema() != SchemaVersion+2 {
			t.Errorf("schema %d after a failed migration", tx.Schema())
		}
		return nil
	})
	s.Close()
}

// TestMigrateSchema1DerivesCountsFromTheTraceLog opens a schema 1 store
// (no counters bucket) whose executor record counts fewer reports than its
// traces, as a crash left it: the migration takes the trace log's count.
func TestMigrateSchema1DerivesCountsFromTheTraceLog(t *testing.T) {
	path := filepath.Join(t.TempDir(), "old.db")
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	err = s.Update(func(tx *Tx) error {
		if err := tx.PutExecutor(&Executor{ID: "ex-1", Reports: 5}); err != nil {
			return err
		}
		for i := 0; i < 7; i++ {
			tr := Trace{Executor: "ex-1", Key: "m/c/o", ReportSeq: uint64(i + 1), Split: 1, Bits: 8, Propensity: 1}
			if _, err := tx.AppendTrace(tr.AppendEncoded(nil)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	s.db.Update(func(tx *bolt.Tx) error {
		if err := tx.DeleteBucket(bucketCounters); err != nil {
			return err
		}
		return putSchema(tx.Bucket(bucketMeta), 1)
	})
	s.Close()
	s, err = Open(path, Options{})
	if err != nil {
		t.Fatalf("open a schema 1 store: %v", err)
	}
	defer s.Close()
	s.View(func(tx *Tx) error {
		n, err := tx.ReportCount("ex-1")
		if tx.Schema() != 2 || n != 7 || err != nil {
			t.Errorf("after migration: schema %d, count %d (%v), want 2 and 7", tx.Schema(), n, err)
		}
		return nil
	})
}
