package main

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
)

// A stream as go test -json writes it: a passing test's log hidden, a failed subtest shown under
// its parent as go test shows it, the package verdicts kept (the binary's PASS line dropped), a
// skip listed with its reason.
func TestRender(t *testing.T) {
	var in strings.Builder
	ev := func(action, test, output string) {
		b, _ := json.Marshal(event{Action: action, Package: "p", Test: test, Output: output})
		in.Write(append(b, '\n'))
	}
	ev("start", "", "")
	ev("output", "TestOK", "=== RUN   TestOK\n")
	ev("output", "TestOK", "    a_test.go:1: quiet\n")
	ev("output", "TestOK", "--- PASS: TestOK (0.00s)\n")
	ev("pass", "TestOK", "")
	ev("output", "TestBad", "=== RUN   TestBad\n")
	ev("output", "TestBad", "    a_test.go:2: said\n")
	ev("output", "TestBad/sub", "=== RUN   TestBad/sub\n")
	ev("output", "TestBad/sub", "    a_test.go:3: broke\n")
	ev("output", "TestBad/sub", "--- FAIL: TestBad/sub (0.00s)\n")
	ev("fail", "TestBad/sub", "")
	ev("output", "TestBad", "--- FAIL: TestBad (0.00s)\n")
	ev("fail", "TestBad", "")
	ev("output", "TestSkip", "=== RUN   TestSkip\n")
	ev("output", "TestSkip", "    a_test.go:4: no frob\n")
	ev("output", "TestSkip", "--- SKIP: TestSkip (0.00s)\n")
	ev("skip", "TestSkip", "")
	ev("output", "", "PASS\n")
	ev("output", "", "FAIL\tp\t0.01s\n")
	ev("fail", "", "")
	in.WriteString("not json\n")
	var out strings.Builder
	skipped, err := render(strings.NewReader(in.String()), &out, false)
	if err != nil {
		t.Fatal(err)
	}
	want := "--- FAIL: TestBad (0.00s)\n    a_test.go:2: said\n    --- FAIL: TestBad/sub (0.00s)\n        a_test.go:3: broke\nFAIL\tp\t0.01s\nnot json\n"
	if out.String() != want {
		t.Errorf("shown:\n%s\nwant:\n%s", out.String(), want)
	}
	if w := []string{"p TestSkip: a_test.go:4: no frob"}; !slices.Equal(skipped, w) {
		t.Errorf("skipped %q, want %q", skipped, w)
	}
}
