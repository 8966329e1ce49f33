// Package memcheck runs part of a test in a child process, the test binary itself re-run for
// that test alone, and reports the child's peak resident memory: the tests that feed forged
// files to the readers check that refusing them stays within a bound, and a reader that
// balloons is stopped by a watchdog instead of taking the machine down with it.
package memcheck

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"
)

// env names the test the child is to run fn for.
const env = "SEGKIT_MEMCHECK"

// marker starts the line the child reports on.
const marker = "memcheck: "

// Result is what the child reported.
type Result struct {
	Err     string        // fn's error ("" when it returned nil)
	Peak    int64         // peak resident memory in bytes (-1 where the system does not say)
	Took    time.Duration // fn's run time
	Stopped string        // why the watchdog stopped the child ("" when it did not)
}

type report struct {
	Err  *string `json:"err"`
	Took int64   `json:"took_ns"`
}

// Run calls fn in a child process and returns what it did. The child is stopped once its
// resident memory passes stop bytes or it runs for a minute. In the child itself (the test
// binary re-run with env set to t.Name()), Run calls fn, reports on stdout and skips the rest
// of the test.
func Run(t *testing.T, stop int64, fn func() error) Result {
	t.Helper()
	if os.Getenv(env) == t.Name() {
		start := time.Now()
		err := fn()
		r := report{Took: int64(time.Since(start))}
		if err != nil {
			s := err.Error()
			r.Err = &s
		}
		line, _ := json.Marshal(r)
		fmt.Printf("\n%s%s\n", marker, line)
		t.SkipNow()
	}
	parts := strings.Split(t.Name(), "/")
	for i, p := range parts {
		parts[i] = "^" + regexp.QuoteMeta(p) + "$"
	}
	cmd := exec.Command(os.Args[0], "-test.run="+strings.Join(parts, "/"), "-test.count=1")
	cmd.Env = append(os.Environ(), env+"="+t.Name())
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	stopped := watch(cmd.Process.Pid, stop, time.Minute, func() { cmd.Process.Kill() })
	cmd.Wait()
	res := Result{Peak: peak(cmd.ProcessState), Stopped: stopped()}
	if res.Stopped != "" {
		return res
	}
	i := strings.LastIndex(out.String(), marker)
	var r report
	if i < 0 || json.Unmarshal([]byte(strings.SplitN(out.String()[i+len(marker):], "\n", 2)[0]), &r) != nil {
		t.Fatalf("the child reported nothing (%v):\n%s", cmd.ProcessState, tail(out.String()))
	}
	if r.Err != nil {
		res.Err = *r.Err
	}
	res.Took = time.Duration(r.Took)
	return res
}

// Refused runs fn in a child (Run) and checks that it fails with one short line that names
// path and says want, within limit bytes of peak resident memory and took of time.
func Refused(t *testing.T, path, want string, limit int64, took time.Duration, fn func() error) Result {
	t.Helper()
	r := Run(t, 2*limit, fn)
	switch {
	case r.Stopped != "":
		t.Errorf("not refused: %s", r.Stopped)
		return r
	case r.Err == "":
		t.Errorf("accepted; want an error saying %q", want)
	case !strings.Contains(r.Err, path) || !strings.Contains(r.Err, want):
		t.Errorf("error %q, want one naming %s and saying %q", tail(r.Err), path, want)
	case len(r.Err) > 400 || strings.Contains(r.Err, "\n"):
		t.Errorf("error of %d bytes (one short line wanted): %q", len(r.Err), tail(r.Err))
	}
	if r.Peak > limit {
		t.Errorf("peak resident memory %d MB, more than %d MB", r.Peak>>20, limit>>20)
	}
	if r.Took > took {
		t.Errorf("took %v to refuse it (at most %v)", r.Took, took)
	}
	t.Logf("refused in %v, peak RSS %d MB: %s", r.Took.Round(time.Millisecond), r.Peak>>20, tail(r.Err))
	return r
}

func tail(s string) string {
	if len(s) > 600 {
		return s[:300] + fmt.Sprintf(" …(%d bytes)… ", len(s)-600) + s[len(s)-300:]
	}
	return s
}
