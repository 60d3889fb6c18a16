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
