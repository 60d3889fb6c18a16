package dynoctl

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/dynoml/dyno/api"
	"github.com/dynoml/dyno/store"
)

func newBackupCmd() *cobra.Command {
	var c conn
	var out string
	var force bool
	cmd := &cobra.Command{
		Use:   "backup --out FILE",
		Short: "Copy the controller's store, consistently, while it runs",
		Long: `backup streams a consistent copy of the controller's bbolt store (one read
transaction: everything committed before it started, nothing after) into
a temporary file beside FILE, syncs it, checks that it opens as a dyno store,
and renames it to FILE. An existing FILE is replaced only with --force, and
never when it is the controller's live store (the same path, or the same
file under another name: the controller would go on writing to a file no
longer there). A controller started on the copy restores every key, policy, pin,
executor and trace it holds.`,
		Example: `  dynoctl backup --out dyno-$(date +%F).db`,
		Args:    exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if out == "" {
				return usageError{errors.New("--out FILE is required")}
			}
			var n, total int64
			c.timeout = max(c.timeout, time.Hour)
			var tmp string
			defer func() {
				if tmp != "" {
					os.Remove(tmp)
				}
			}()
			err := c.call(func(ctx context.Context, a api.AdminClient) error {
				st, err := a.Status(ctx, &api.StatusRequest{})
				if err != nil {
					return err
				}
				if err := checkBackupTarget(out, st, force); err != nil {
					return err
				}
				f, err := os.CreateTemp(filepath.Dir(out), "."+filepath.Base(out)+".tmp-*")
				if err != nil {
					return err
				}
				tmp = f.Name()
				defer f.Close()
				s, err := a.Backup(ctx, &api.BackupRequest{})
				if err != nil {
					return err
				}
				for {
					chunk, err := s.Recv()
					if errors.Is(err, io.EOF) {
						break
					}
					if err != nil {
						return err
					}
					if chunk.TotalBytes > 0 {
						total = chunk.TotalBytes
					}
					m, err := f.Write(chunk.Data)
					n += int64(m)
					if err != nil {
						return err
					}
				}
				if total > 0 && n != total {
					return fmt.Errorf("backup: received %d of %d bytes", n, total)
				}
				if err := f.Sync(); err != nil {
					return err
				}
				return f.Close()
			})
			if err != nil {
				return err
			}
			if err := store.Check(tmp); err != nil {
				return fmt.Errorf("backup: the copy does not check: %w", err)
			}
			if err := os.Rename(tmp, out); err != nil {
				return err
			}
			tmp = ""
			if d, err := os.Open(filepath.Dir(out)); err == nil {
				// The rename is durable once the folder is synced.
				d.Sync()
				d.Close()
			}
			w := cmd.OutOrStdout()
			if c.json {
				return printJSON(w, map[string]any{"out": out, "bytes": n})
			}
			_, err = fmt.Fprintf(w, "wrote %s (%s), checked\n", out, bytesString(uint64(n)))
			return err
		},
	}
	addConnFlags(cmd, &c)
	cmd.Flags().StringVar(&out, "out", "", "file to write")
	cmd.Flags().BoolVar(&force, "force", false, "replace FILE if it exists (never the live store)")
	return cmd
}

// checkBackupTarget refuses to write a backup over the live store (by
// path, or by device and inode) or, without force, over any existing file.
func checkBackupTarget(out string, st *api.StatusResponse, force bool) error {
	abs, err := filepath.Abs(out)
	if err != nil {
		return usageError{fmt.Errorf("--out %s: %v", out, err)}
	}
	live := st.StorePath
	if filepath.IsAbs(live) && filepath.Clean(live) == abs {
		return badInputError{fmt.Errorf("--out %s is the controller's live store: write the backup elsewhere", out)}
	}
	fi, err := os.Stat(out)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("--out %s: %v", out, err)
	}
	if sys, ok := fi.Sys().(*syscall.Stat_t); ok && st.StoreInode != 0 && sys.Ino == st.StoreInode && uint64(sys.Dev) == st.StoreDevice {
		return badInputError{fmt.Errorf("--out %s is the controller's live store (device %d, inode %d): write the backup elsewhere", out, st.StoreDevice, st.StoreInode)}
	}
	if lfi, err := os.Stat(live); err == nil && os.SameFile(fi, lfi) {
		return badInputError{fmt.Errorf("--out %s is the controller's live store (%s): write the backup elsewhere", out, live)}
	}
	if fi.IsDir() {
		return badInputError{fmt.Errorf("--out %s is a directory", out)}
	}
	if !force {
		return badInputError{fmt.Errorf("--out %s exists: give --force to replace it", out)}
	}
	return nil
}
