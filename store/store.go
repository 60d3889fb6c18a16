package store

import (
	"errors"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"syscall"
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
	// ErrEmpty: the file exists but holds nothing (Options.Create makes a
	// store in it).
	ErrEmpty = errors.New("store: empty file")
	// ErrInvalid: a record to write is out of range (a key's floors).
	ErrInvalid = errors.New("store: invalid record")
)

// Options configure Open. The zero value is usable.
type Options struct {
	// LockTimeout is how long Open waits for another process to release
	// the file; zero means one second.
	LockTimeout time.Duration
	// SkipCheck skips the full consistency check of an existing file on
	// Open (bbolt's check of every page and the decoding of every record:
	// about a second per few hundred MB). The structural walk of the pages
	// (verifyFile) always runs.
	SkipCheck bool
	// NoSync skips fsync on commit. For benchmarks that want to measure
	// without the disk only; a crash may lose acknowledged data.
	NoSync bool
	// InitialMmapSize reserves address space for the file so that readers
	// do not block the writer while the file grows; zero means 1 GiB.
	InitialMmapSize int
	// Create allows Open to make a new store in an existing empty file (0
	// bytes, or a bbolt file with no bucket). A missing file is always
	// created; an empty one is refused without Create, since it is more
	// often a store lost to an accident than a new one.
	Create bool
	// AllowMetaFallback opens a file whose newer meta page is damaged at
	// its older one, as bbolt does on its own, losing the last commit.
	// Without it such a file is refused.
	AllowMetaFallback bool
}

// Store is one open store file. It is safe for concurrent use: any number
// of View transactions run beside at most one Update.
type Store struct {
	db   *bolt.DB
	path string
}

// Open opens or creates the store at path. An existing file is checked
// read-only first (its pages, its identity and schema, every record), and
// is never written when it is not a dyno store, is of a newer schema, is
// damaged in any way, or is empty without opts.Create.
func Open(path string, opts Options) (*Store, error) {
	if opts.LockTimeout == 0 {
		opts.LockTimeout = time.Second
	}
	if opts.InitialMmapSize == 0 {
		opts.InitialMmapSize = 1 << 30
	}
	fi, err := os.Stat(path)
	switch {
	case err == nil && fi.IsDir():
		return nil, fmt.Errorf("open store %s: %w: it is a directory", path, ErrNotStore)
	case err == nil && fi.Size() == 0 && !opts.Create:
		return nil, fmt.Errorf("open store %s: %w: the file is empty (0 bytes); to make a new store in it, allow creation (dyno-controller -store-create)", path, ErrEmpty)
	case err == nil && fi.Size() > 0:
		if err := inspect(path, opts, !opts.Create); err != nil {
			return nil, err
		}
	case err != nil && !errors.Is(err, os.ErrNotExist):
		return nil, fmt.Errorf("open store %s: %w", path, err)
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

// inspect checks, without writing, that an existing file is a sound dyno
// store of a schema this build reads: first its pages with plain reads
// (verifyFile), then, read-only through bbolt, its identity, buckets,
// bbolt's own check and every record. requireMeta refuses a bbolt file
// with no bucket at all.
func inspect(path string, opts Options, requireMeta bool) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("open store %s: %w", path, err)
	}
	defer f.Close() // and with it the lock
	// The walk reads the file as it is: no writer may be in the middle of
	// a commit.
	if err := lockShared(f, opts.LockTimeout); errors.Is(err, syscall.EWOULDBLOCK) {
		return openError(path, berrors.ErrTimeout)
	} else if err != nil {
		return fmt.Errorf("open store %s: lock: %w", path, err)
	}
	if _, err := verifyFile(f, opts.AllowMetaFallback); err != nil {
		return fmt.Errorf("open store %s: %w", path, err)
	}
	db, err := bolt.Open(path, 0o400, &bolt.Options{ReadOnly: true, Timeout: opts.LockTimeout})
	if err != nil {
		return openError(path, err)
	}
	defer db.Close()
	// Run where a fault is caught: bbolt panics on some damaged pages
	// rather than returning an error, and a page it reads beyond the
	// mapping faults. The walk above rules both out for what it checks;
	// this is the net beneath it.
	done := make(chan error, 1)
	go func() {
		debug.SetPanicOnFault(true)
		defer func() {
			if r := recover(); r != nil {
				done <- fmt.Errorf("open store %s: %w: %v", path, ErrCorrupt, r)
			}
		}()
		done <- db.View(func(tx *bolt.Tx) error {
			empty, err := checkIdentity(tx)
			if err != nil {
				return fmt.Errorf("open store %s: %w", path, err)
			}
			if empty && requireMeta {
				return fmt.Errorf("open store %s: %w: a bbolt file with no bucket; to make a new store in it, allow creation", path, ErrEmpty)
			}
			if empty || opts.SkipCheck {
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
			if err := checkRecords(tx); err != nil {
				return fmt.Errorf("open store %s: %w", path, err)
			}
			return nil
		})
	}()
	return <-done
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

// FileID returns the device and inode of the store's file (zeros where the
// system has none).
func (s *Store) FileID() (dev, ino uint64) {
	fi, err := os.Stat(s.path)
	if err != nil {
		return 0, 0
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return uint64(st.Dev), st.Ino
	}
	return 0, 0
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
		return fmt.Errorf("check store %s: %w: empty file", path, ErrEmpty)
	}
	return inspect(path, Options{LockTimeout: time.Second}, true)
}
