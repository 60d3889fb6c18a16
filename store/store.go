package store

import (
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// Errors of Open, tested with errors.Is.
var (
	// ErrNotStore: the file is not a dyno store (not bbolt, or a bbolt
	// file of something else).
	ErrNotStore = errors.New("store: not a dyno store")
	// ErrSchemaTooNew: the store was written by a newer dyno.
	ErrSchemaTooNew = errors.New("store: schema newer than this build")
	// ErrCorrupt: the file fails bbolt's consistency check.
	ErrCorrupt = errors.New("store: corrupt")
	// ErrLocked: another process has the file open.
	ErrLocked = errors.New("store: locked by another process")
	// ErrCorruptRecord: a record does not decode.
	ErrCorruptRecord = errors.New("store: corrupt record")
)

// Options configure Open. The zero value is usable.
type Options struct {
	// LockTimeout is how long Open waits for another process to release
	// the file; zero means one second.
	LockTimeout time.Duration
	// SkipCheck skips the full consistency check of an existing file on
	// Open (it reads every page: about a second per few hundred MB).
	SkipCheck bool
	// NoSync skips fsync on commit. For benchmarks that want to measure
	// without the disk only; a crash may lose acknowledged data.
	NoSync bool
	// InitialMmapSize reserves address space for the file so that readers
	// do not block the writer while the file grows; zero means 1 GiB.
	InitialMmapSize int
}

// Store is one open store file. It is safe for concurrent use: any number
// of View transactions run beside at most one Update.
type Store struct {
	db   *bolt.DB
	path string
}

// Open opens or creates the store at path. An existing file is checked
// read-only first, and is never written when it is not a dyno store, is of a
// newer schema, or is corrupt.
func Open(path string, opts Options) (*Store, error) {
	if opts.LockTimeout == 0 {
		opts.LockTimeout = time.Second
	}
	if opts.InitialMmapSize == 0 {
		opts.InitialMmapSize = 1 << 30
	}
	if fi, err := os.Stat(path); err == nil && fi.Size() > 0 {
		if fi.IsDir() {
			return nil, fmt.Errorf("open store %s: %w: it is a directory", path, ErrNotStore)
		}
		if err := inspect(path, opts, false); err != nil {
			return nil, err
		}
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{
		Timeout:         opts.LockTimeout,
		NoFreelistSync:  true,
		FreelistType:    bolt.FreelistMapType,
		InitialMmapSize: opts.InitialMmapSize,
		NoSync:          opts.NoSync,
	})
	if err != nil {
		return nil, openError(path, err)
	}
	s := &Store{db: db, path: path}
	if err := s.init(); err != nil {
		db.Close()
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	return s, nil
}

// inspect opens an existing file read-only and checks that it is a dyno
// store of a schema this build reads.
func inspect(path string, opts Options, requireMeta bool) (err error) {
	db, err := bolt.Open(path, 0o400, &bolt.Options{ReadOnly: true, Timeout: opts.LockTimeout})
	if err != nil {
		return openError(path, err)
	}
	defer db.Close()
	defer func() {
		// bbolt panics on some damaged pages rather than returning an error.
		if r := recover(); r != nil {
			err = fmt.Errorf("open store %s: %w: %v", path, ErrCorrupt, r)
		}
	}()
	return db.View(func(tx *bolt.Tx) error {
		if err := checkIdentity(tx); err != nil {
			return fmt.Errorf("open store %s: %w", path, err)
		}
		if requireMeta && tx.Bucket(bucketMeta) == nil {
			return fmt.Errorf("open store %s: %w: an empty bbolt file", path, ErrNotStore)
		}
		if opts.SkipCheck {
			return nil
		}
		var first error
		for cerr := range tx.Check() {
			if first == nil {
				first = cerr
			}
		}
		if first != nil {
			return fmt.Errorf("open store %s: %w: %v", path, ErrCorrupt, first)
		}
		return nil
	})
}

func openError(path string, err error) error {
	switch {
	case errors.Is(err, berrors.ErrTimeout):
		return fmt.Errorf("open store %s: %w (is a controller running on it? `dynoctl backup` copies a running store)", path, ErrLocked)
	case errors.Is(err, berrors.ErrInvalid):
		return fmt.Errorf("open store %s: %w: not a bbolt file", path, ErrNotStore)
	case errors.Is(err, berrors.ErrChecksum), errors.Is(err, berrors.ErrVersionMismatch), errors.Is(err, berrors.ErrInvalidMapping):
		return fmt.Errorf("open store %s: %w: %v", path, ErrCorrupt, err)
	}
	return fmt.Errorf("open store %s: %w", path, err)
}

// Path is the file the store lives in.
func (s *Store) Path() string { return s.path }

// Close closes the file. Transactions in flight finish first.
func (s *Store) Close() error { return s.db.Close() }

// Update runs fn in a read-write transaction and commits it (with fsync)
// when fn returns nil; an error from fn rolls everything back. Only one
// Update runs at a time.
func (s *Store) Update(fn func(*Tx) error) error {
	return s.db.Update(func(tx *bolt.Tx) error { return fn(&Tx{tx: tx}) })
}

// View runs fn in a read-only transaction: a consistent snapshot that
// concurrent updates do not change.
func (s *Store) View(fn func(*Tx) error) error {
	return s.db.View(func(tx *bolt.Tx) error { return fn(&Tx{tx: tx}) })
}

// Size is the size of the file in bytes.
func (s *Store) Size() int64 {
	var n int64
	_ = s.db.View(func(tx *bolt.Tx) error { n = tx.Size(); return nil })
	return n
}

// Backup writes a consistent copy of the store to w while the store stays
// in use, and returns the bytes written. size, when not nil, is told the
// size of the copy before it is written. The copy is itself a store that
// Open accepts.
func (s *Store) Backup(w io.Writer, size func(int64)) (int64, error) {
	var n int64
	err := s.db.View(func(tx *bolt.Tx) error {
		if size != nil {
			size(tx.Size())
		}
		var err error
		n, err = tx.WriteTo(w)
		return err
	})
	return n, err
}

// Tx is a transaction. It must not be used after the callback that received
// it returns.
type Tx struct {
	tx *bolt.Tx
}

func (t *Tx) bucket(name []byte) *bolt.Bucket { return t.tx.Bucket(name) }

// Check opens the file at path read-only and checks that it is a dyno store
// of a schema this build reads, and consistent. It writes nothing; use it to
// verify a backup.
func Check(path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	if fi.Size() == 0 {
		return fmt.Errorf("check store %s: %w: empty file", path, ErrNotStore)
	}
	return inspect(path, Options{LockTimeout: time.Second}, true)
}
