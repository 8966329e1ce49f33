package mpirun

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// Find without mpirun on PATH: a skip, and a failure under CI=true. The test binary runs
// itself on a test that calls Find, with a PATH of one empty directory.
func TestFindMissing(t *testing.T) {
	if os.Getenv("MPIRUN_CHILD") == "1" {
		Find(t)
		t.Fatal("Find returned without mpirun on PATH")
	}
	empty := t.TempDir()
	for _, c := range []struct {
		ci    string
		fails bool
		line  string
	}{{"", false, "--- SKIP: TestFindMissing"}, {"true", true, "--- FAIL: TestFindMissing"}} {
		cmd := exec.Command(os.Args[0], "-test.run=^TestFindMissing$", "-test.v")
		cmd.Env = append(os.Environ(), "MPIRUN_CHILD=1", "PATH="+empty, "CI="+c.ci)
		out, err := cmd.CombinedOutput()
		if (err != nil) != c.fails || !strings.Contains(string(out), c.line) || !strings.Contains(string(out), "mpirun not found") {
			t.Errorf("CI=%q: %v, want failed=%t and %q:\n%s", c.ci, err, c.fails, c.line, out)
		}
	}
}
