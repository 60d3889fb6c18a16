package dynoctl

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/dynoml/dyno/api"
	"github.com/dynoml/dyno/store"
)

func newBackupCmd() *cobra.Command {
	var c conn
	var out string
	cmd := &cobra.Command{
		Use:   "backup --out FILE",
		Short: "Copy the controller's store, consistently, while it runs",
		Long: `backup streams a consistent copy of the controller's bbolt store (one read
transaction: everything committed before it started, nothing after) into
FILE.tmp, syncs it, checks that it opens as a dyno store, and renames it to
FILE. A controller started on the copy restores every key, policy, pin,
executor and trace it holds.`,
		Example: `  dynoctl backup --out dyno-$(date +%F).db`,
		Args:    exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if out == "" {
				return usageError{errors.New("--out FILE is required")}
			}
			tmp := out + ".tmp"
			f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
			if err != nil {
				return err
			}
			defer func() {
				f.Close()
				os.Remove(tmp)
			}()
			var n, total int64
			c.timeout = max(c.timeout, time.Hour)
			err = c.call(func(ctx context.Context, a api.AdminClient) error {
				s, err := a.Backup(ctx, &api.BackupRequest{})
				if err != nil {
					return err
				}
				for {
					chunk, err := s.Recv()
					if errors.Is(err, io.EOF) {
						return nil
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
			})
			if err != nil {
				return err
			}
			if total > 0 && n != total {
				return fmt.Errorf("backup: received %d of %d bytes", n, total)
			}
			if err := f.Sync(); err != nil {
				return err
			}
			if err := f.Close(); err != nil {
				return err
			}
			if err := store.Check(tmp); err != nil {
				return fmt.Errorf("backup: the copy does not check: %w", err)
			}
			if err := os.Rename(tmp, out); err != nil {
				return err
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
	return cmd
}
