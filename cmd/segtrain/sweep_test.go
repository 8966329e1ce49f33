package main

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// segtrain sweep on tiny runs: the table and files; --report redraws them; the flags that a
// sweep sets itself, or that --report does not use, are usage errors.
func TestSweepCommand(t *testing.T) {
	dir := t.TempDir()
	out, err := run("sweep", "--iters", "2", "--crop", "32", "--batch", "2", "--eval-every", "0", "--ckpt-every", "0",
		"--seeds", "1", "--gmacs-budget", "0.5", "--baseline-scales", "1", "--out", dir, "--name", "s")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	for _, want := range []string{"sweep " + filepath.Join(dir, "s") + ": 2 runs", "dynopool_budget0.5_seed0: training", "fixed_scale1_seed0: training", "pareto"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "s", "frontier.png")); err != nil {
		t.Error(err)
	}
	if out, err := run("sweep", "--report", filepath.Join(dir, "s")); err != nil || !strings.Contains(out, "dynopool") {
		t.Errorf("--report: %v\n%s", err, out)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"sweep", "--resize", "fixed"}, "--resize"},
		{[]string{"sweep", "--report", dir, "--seeds", "2"}, "--seeds: not used with --report"},
		{[]string{"sweep", "--gmacs-budget", "0.5,x"}, "comma-separated list"},
		{[]string{"sweep", "--seeds", "0", "--out", dir}, "--seeds 0"},
	} {
		_, err := run(c.args...)
		var u usageError
		if !errors.As(err, &u) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: %v, want a usage error saying %q", c.args, err, c.want)
		}
	}
}

// A list flag takes numbers, or "" for none; anything else is refused.
func TestFloatList(t *testing.T) {
	var l floatList
	if err := l.Set("0.5, 1"); err != nil || len(l) != 2 || l[0] != 0.5 || l[1] != 1 {
		t.Errorf("0.5, 1: %v %v", l, err)
	}
	if err := l.Set(""); err != nil || len(l) != 0 {
		t.Errorf(`"": %v %v`, l, err)
	}
	if err := l.Set("0.5,x"); err == nil {
		t.Error("0.5,x accepted")
	}
}
