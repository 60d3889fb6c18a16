package cliutil_test

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/spf13/cobra"

	"github.com/dynoml/dyno/internal/cliutil"
)

type usageErr struct{ error }

func tree() *cobra.Command {
	root := &cobra.Command{Use: "tool"}
	group := &cobra.Command{Use: "group", Short: "a group"}
	leaf := &cobra.Command{Use: "leaf ARG", Args: cobra.ExactArgs(1), RunE: func(*cobra.Command, []string) error { return nil }}
	group.AddCommand(leaf)
	root.AddCommand(group)
	cliutil.Strict(root, func(err error) error { return usageErr{err} })
	return root
}

func TestStrict(t *testing.T) {
	for _, tc := range []struct {
		name  string
		args  []string
		usage bool
		want  string
	}{
		{"leaf", []string{"group", "leaf", "x"}, false, ""},
		{"group alone prints its help", []string{"group"}, false, "leaf"},
		{"unknown command", []string{"bogus"}, true, `unknown command "bogus" for "tool"`},
		{"unknown subcommand", []string{"group", "lef"}, true, `unknown command "lef" for "tool group" (did you mean leaf?)`},
		{"missing argument", []string{"group", "leaf"}, true, "leaf: accepts 1 arg(s), received 0 (usage: tool group leaf ARG [flags])"},
		{"unknown flag", []string{"group", "leaf", "x", "--bogus"}, true, "unknown flag: --bogus"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := tree()
			var out bytes.Buffer
			root.SetOut(&out)
			root.SetErr(&out)
			root.SetArgs(tc.args)
			err := root.Execute()
			var u usageErr
			if errors.As(err, &u) != tc.usage || (!tc.usage && err != nil) {
				t.Fatalf("err %v; want a usage error: %v", err, tc.usage)
			}
			got := out.String()
			if err != nil {
				got = err.Error()
			}
			if !strings.Contains(got, tc.want) {
				t.Errorf("%q lacks %q", got, tc.want)
			}
		})
	}
}

func TestVersionString(t *testing.T) {
	cliutil.Version, cliutil.Commit = "v1.2.3", "abc123"
	defer func() { cliutil.Version, cliutil.Commit = "", "" }()
	if v := cliutil.VersionString(); !strings.HasPrefix(v, "v1.2.3 (commit abc123, ") {
		t.Fatalf("VersionString() = %q", v)
	}
}
