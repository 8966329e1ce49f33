// Package testci says whether the tests run under CI, and skips a test whose tool or library
// is missing, except under CI, where a skipped check would pass unseen, so it fails.
package testci

import (
	"os"
	"strconv"
	"testing"
)

// Enabled reports whether CI is set to a true value (CI=true, as CI services set it; also 1 or
// yes). Unset, empty, 0 and false are not CI.
func Enabled() bool {
	v := os.Getenv("CI")
	if v == "" {
		return false
	}
	if b, err := strconv.ParseBool(v); err == nil {
		return b
	}
	return true // CI=yes and the like: a CI service's own value
}

// Missing ends t for want of what msg names: it skips, saying why, or fails under CI.
func Missing(t testing.TB, msg string) {
	t.Helper()
	if Enabled() {
		t.Fatal(msg + " (CI is set: a missing tool fails rather than skips)")
	}
	t.Skip(msg)
}
