package e2e_test

import (
	"bytes"
	"regexp"
	"strings"
	"testing"
)

// helpTree is every command of a binary with its --help text and flags,
// read from the binary's own help output.
type helpTree map[string]helpCmd // "" is the root; "model split" a subcommand

type helpCmd struct {
	text  string
	flags map[string]bool
}

var flagLine = regexp.MustCompile(`^\s+(?:-\w, )?--([a-z0-9-]+)`)

func readHelp(t *testing.T, bin string) helpTree {
	t.Helper()
	tree := helpTree{}
	var walk func(path []string)
	walk = func(path []string) {
		var out, errOut bytes.Buffer
		args := append(append([]string{}, path...), "--help")
		if code := binaries[bin](args, &out, &errOut); code != 0 {
			t.Fatalf("%s %s: exit %d: %s", bin, strings.Join(args, " "), code, errOut.String())
		}
		text := out.String()
		c := helpCmd{text: text, flags: map[string]bool{}}
		section := ""
		var subs []string
		for _, line := range strings.Split(text, "\n") {
			switch {
			case strings.HasSuffix(line, ":") && !strings.HasPrefix(line, " "):
				section = line
				continue
			case section == "Available Commands:" && strings.HasPrefix(line, "  "):
				if f := strings.Fields(line); len(f) > 0 && f[0] != "help" && f[0] != "completion" {
					subs = append(subs, f[0])
				}
			case strings.HasSuffix(section, "Flags:"):
				if m := flagLine.FindStringSubmatch(line); m != nil {
					c.flags[m[1]] = true
				}
			}
		}
		tree[strings.Join(path, " ")] = c
		for _, s := range subs {
			walk(append(append([]string{}, path...), s))
		}
	}
	walk(nil)
	return tree
}

// mention is "dynoctl model split X --list" in a help text: a binary, then
// words and flags.
var mention = regexp.MustCompile(`\b(dyno-controller|dyno-executor|dynoctl)((?: +(?:--?[a-z0-9][a-z0-9-]*|[a-z][a-z0-9-]*))*)`)

// TestHelpTextsNameWhatExists reads every command's --help of the three
// binaries and checks what the texts point at: a command named after a
// binary ("as 'dynoctl model split' writes them") must exist, a flag named
// right after a command must be one of its flags, and no text names a
// single-dash long flag ("-list"), which the flag parser would read as a
// cluster of short flags.
func TestHelpTextsNameWhatExists(t *testing.T) {
	trees := map[string]helpTree{}
	for bin := range binaries {
		trees[bin] = readHelp(t, bin)
	}
	singleDash := regexp.MustCompile(`(?:^|[\s(\x60'"])-[a-z][a-z-]+\b`)
	checked := 0
	for bin, tree := range trees {
		for path, c := range tree {
			where := strings.TrimSpace(bin + " " + path)
			if m := singleDash.FindString(c.text); m != "" {
				t.Errorf("%s --help names the single-dash flag %q", where, strings.TrimSpace(m))
			}
			for _, m := range mention.FindAllStringSubmatch(c.text, -1) {
				target := trees[m[1]]
				words := strings.Fields(m[2])
				// The longest run of words that is a command.
				cmd, n := "", 0
				for i := range words {
					if strings.HasPrefix(words[i], "-") {
						break
					}
					p := strings.Join(words[:i+1], " ")
					if _, ok := target[p]; ok {
						cmd, n = p, i+1
					}
				}
				if n == 0 {
					if len(words) > 0 && !strings.HasPrefix(words[0], "-") && !plainWord(words[0]) {
						t.Errorf("%s --help names %q, but %s has no command %q", where, m[0], m[1], words[0])
					}
					continue
				}
				checked++
				for _, w := range words[n:] {
					if !strings.HasPrefix(w, "--") {
						if strings.HasPrefix(w, "-") && len(w) > 2 {
							t.Errorf("%s --help names %q: single-dash flag %s", where, m[0], w)
						}
						break
					}
					if name := strings.TrimPrefix(w, "--"); !target[cmd].flags[name] && name != "help" {
						t.Errorf("%s --help names %q, but %s %s has no flag --%s", where, m[0], m[1], cmd, name)
					}
				}
			}
		}
	}
	if checked == 0 {
		t.Fatal("no help text names a command: the pattern is broken")
	}
	t.Logf("%d references to commands checked", checked)
}

// plainWord is an English word that may follow a binary's name in prose
// ("dynoctl is the command-line tool").
func plainWord(w string) bool {
	switch w {
	case "is", "runs", "makes", "and", "or", "with", "on", "to", "the", "in", "for", "as", "a", "an", "itself", "binary", "binaries", "commands", "command", "reads", "writes", "lists", "has", "can", "must", "will", "prints", "sends", "uses":
		return true
	}
	return false
}
