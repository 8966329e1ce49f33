// Command testreport reads `go test -json` on stdin and writes what plain `go test` would show
// (each package's ok or FAIL line, a failed test's output, build errors), and appends one line
// per skipped test, with the reason it gave, to a file: scripts/test.sh lists them at the end,
// so that a check skipped for want of a tool is seen rather than passing unnoticed.
//
//	go test -json ./... | testreport -skips FILE [-label L] [-v]
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
)

// event is one line of go test -json (cmd/test2json's TestEvent).
type event struct {
	Action  string
	Package string
	Test    string
	Output  string
}

func main() {
	skips := flag.String("skips", "", "append `file` a line per skipped test: package test: reason")
	label := flag.String("label", "", "prefix the skip lines with `label` (which pass skipped them)")
	verbose := flag.Bool("v", false, "show every test's output, as go test -v does")
	flag.Parse()
	skipped, err := render(os.Stdin, os.Stdout, *verbose)
	if err != nil {
		fmt.Fprintln(os.Stderr, "testreport:", err)
		os.Exit(1)
	}
	if *skips == "" || len(skipped) == 0 {
		return
	}
	f, err := os.OpenFile(*skips, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err == nil {
		for _, s := range skipped {
			if *label != "" {
				s = *label + ": " + s
			}
			fmt.Fprintln(f, s)
		}
		err = f.Close()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "testreport:", err)
		os.Exit(1)
	}
}

// render copies the stream to w as plain go test shows it and returns the skipped tests, each
// "package test: reason". A line that is not JSON (a tool's own message) is copied as it is.
func render(r io.Reader, w io.Writer, verbose bool) ([]string, error) {
	held := map[[2]string][]string{} // a running test's output, shown only if it fails
	var order [][2]string            // first output first, for what is left at the end
	var skipped []string
	// A failed test is shown as go test shows it: its --- FAIL line, then what it said, then its
	// failed subtests' own, indented.
	flush := func(k [2]string) {
		var head, body []string
		for _, line := range held[k] {
			switch {
			case strings.HasPrefix(line, "=== "): // RUN, PAUSE, CONT, NAME: go test -v's markers
			case strings.HasPrefix(line, "--- FAIL"):
				head = append(head, line)
			default:
				body = append(body, line)
			}
		}
		delete(held, k)
		lines := append(head, body...)
		if i := strings.LastIndexByte(k[1], '/'); i > 0 { // a subtest: into its parent's output
			p := [2]string{k[0], k[1][:i]}
			for _, l := range lines {
				held[p] = append(held[p], "    "+l)
			}
			return
		}
		for _, l := range lines {
			io.WriteString(w, l)
		}
	}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	for sc.Scan() {
		var e event
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil || e.Action == "" {
			fmt.Fprintf(w, "%s\n", sc.Bytes())
			continue
		}
		k := [2]string{e.Package, e.Test}
		switch {
		case verbose && e.Action == "output":
			io.WriteString(w, e.Output)
			if e.Test != "" {
				held[k] = append(held[k], e.Output) // kept for the skip reason
			}
		case e.Action == "build-output":
			io.WriteString(w, e.Output)
		case e.Action == "output" && e.Test == "":
			if e.Output != "PASS\n" { // the test binary's own verdict; plain go test shows only ok
				io.WriteString(w, e.Output)
			}
		case e.Action == "output":
			if _, ok := held[k]; !ok {
				order = append(order, k)
			}
			held[k] = append(held[k], e.Output)
		case e.Action == "fail" && e.Test == "":
			for _, o := range order { // a panic or timeout ends the package mid-test: show it all
				if o[0] == e.Package {
					if _, ok := held[o]; ok && !verbose {
						flush(o)
					}
				}
			}
		case e.Action == "fail":
			if verbose {
				delete(held, k)
			} else {
				flush(k)
			}
		case e.Action == "skip" && e.Test != "":
			skipped = append(skipped, fmt.Sprintf("%s %s: %s", e.Package, e.Test, reason(held[k])))
			delete(held, k)
		case e.Action == "pass" && e.Test != "":
			delete(held, k)
		}
	}
	if !verbose {
		for _, o := range order { // the stream ended mid-test
			if _, ok := held[o]; ok {
				flush(o)
			}
		}
	}
	return skipped, sc.Err()
}

// reason is what a skipped test said: its output without go test's markers, on one line.
func reason(lines []string) string {
	var said []string
	for _, l := range lines {
		l = strings.TrimSpace(l)
		if l == "" || strings.HasPrefix(l, "=== ") || strings.HasPrefix(l, "--- SKIP") {
			continue
		}
		said = append(said, l)
	}
	if len(said) == 0 {
		return "(no reason given)"
	}
	return strings.Join(said, " ")
}
