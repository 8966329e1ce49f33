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
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// env names the test the child is to run fn for; envArg passes it the parent's argument.
const (
	env    = "SEGKIT_MEMCHECK"
	envArg = "SEGKIT_MEMCHECK_ARG"
)

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
	Peak int64   `json:"peak"`
}

// Run calls fn(arg) in a child process and returns what it did, with the child's peak
// resident memory (VmHWM, which it reads itself as fn returns). The child is stopped once its
// resident memory passes stop bytes or it runs for a minute. In the child itself (the test
// binary re-run with env set to t.Name()), Run calls fn with the parent's arg, reports on
// stdout and skips the rest of the test.
func Run(t *testing.T, stop int64, arg string, fn func(arg string) error) Result {
	t.Helper()
	if os.Getenv(env) == t.Name() {
		start := time.Now()
		err := fn(os.Getenv(envArg))
		r := report{Took: int64(time.Since(start)), Peak: selfPeak()}
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
	cmd.Env = append(os.Environ(), env+"="+t.Name(), envArg+"="+arg)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	stopped := watch(cmd.Process.Pid, stop, time.Minute, func() { cmd.Process.Kill() })
	cmd.Wait()
	res := Result{Peak: -1, Stopped: stopped()}
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
	res.Took, res.Peak = time.Duration(r.Took), r.Peak
	return res
}

// Child reports whether this process is the child Run starts for t.
func Child(t *testing.T) bool { return os.Getenv(env) == t.Name() }

// Refused writes a forged file named name (forge, in this process), opens it in a child (open,
// through Run) and checks that it is refused with one short line that names the file and
// says want, within limit bytes of peak resident memory and took of time.
func Refused(t *testing.T, name, want string, limit int64, took time.Duration, forge, open func(path string) error) Result {
	t.Helper()
	var path string
	if !Child(t) {
		path = filepath.Join(t.TempDir(), name)
		if err := forge(path); err != nil {
			t.Fatalf("forging %s: %v", name, err)
		}
	}
	r := Run(t, 2*limit, path, open)
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
