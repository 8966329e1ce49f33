package testci

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

func TestEnabled(t *testing.T) {
	for v, want := range map[string]bool{"": false, "0": false, "false": false, "FALSE": false, "true": true, "1": true, "yes": true} {
		t.Setenv("CI", v)
		if Enabled() != want {
			t.Errorf("CI=%q: Enabled %t, want %t", v, !want, want)
		}
	}
}

// Missing skips outside CI and fails under it: this test binary run again on a test that
// calls Missing, with CI unset and with CI=true.
func TestMissing(t *testing.T) {
	if os.Getenv("TESTCI_CHILD") == "1" {
		Missing(t, "no frobnicator on PATH")
		return
	}
	for _, c := range []struct {
		ci       string
		fails    bool
		wantLine string
	}{
		{"", false, "--- SKIP: TestMissing"},
		{"false", false, "--- SKIP: TestMissing"},
		{"true", true, "--- FAIL: TestMissing"},
	} {
		cmd := exec.Command(os.Args[0], "-test.run=^TestMissing$", "-test.v")
		cmd.Env = append(os.Environ(), "TESTCI_CHILD=1", "CI="+c.ci)
		out, err := cmd.CombinedOutput()
		if (err != nil) != c.fails || !strings.Contains(string(out), c.wantLine) || !strings.Contains(string(out), "no frobnicator on PATH") {
			t.Errorf("CI=%q: %v, want failed=%t and %q:\n%s", c.ci, err, c.fails, c.wantLine, out)
		}
	}
}
