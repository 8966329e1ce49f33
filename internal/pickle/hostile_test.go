package pickle

import (
	"bytes"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/segkit/segkit/internal/memcheck"
)

// Pickles of a few MB whose one-byte opcodes each make something that stays (a value on the
// stack, a memo entry, a MARK, a list or dict) are refused long before their memory grows
// past the input's share: each runs in a child whose peak resident memory is measured.
func TestHostileOpcodes(t *testing.T) {
	for _, c := range []struct {
		name, want string
		in         func() []byte
	}{
		{"dup", "values on the stack", func() []byte { return op(0x80, 4, "N", strings.Repeat("2", 8<<20), ".") }},
		{"memo", "far more than its size justifies", func() []byte { return op(0x80, 4, "}", bytes.Repeat([]byte{opMemoize}, 6<<20), ".") }},
		{"marks", "MARKs open", func() []byte { return op(0x80, 4, strings.Repeat("(", 8<<20), ".") }},
		{"nested", "values on the stack", func() []byte {
			// lists in lists: each list stays on the stack until the appends at the end
			return op(0x80, 4, strings.Repeat("]", 3<<20), strings.Repeat("a", 3<<20-1), ".")
		}},
		{"dicts", "values on the stack", func() []byte { return op(0x80, 4, strings.Repeat("}", 6<<20), ".") }},
		{"memoized lists", "far more than its size justifies", func() []byte {
			// each list memoized, then popped: the stack stays empty, the memo holds them all
			return op(0x80, 4, "N", strings.Repeat("]\x940", 2<<20), ".")
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			memcheck.Refused(t, c.name+".pkl", c.want, 200<<20, 5*time.Second, func(path string) error {
				return os.WriteFile(path, c.in(), 0o644)
			}, func(path string) error {
				raw, err := os.ReadFile(path)
				if err != nil {
					return err
				}
				if _, err := Unmarshal(raw); err != nil {
					return fmt.Errorf("%s: %w", path, err)
				}
				return nil
			})
		})
	}
}
