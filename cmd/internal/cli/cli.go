// Package cli is what segkit's commands share: usage errors and exit statuses, flags that
// several commands take, flag values, and the signals that interrupt a run.
package cli

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/segkit/segkit/segmentation"
)

// UsageError marks a wrong command line (exit status 2, not 1).
type UsageError struct{ Err error }

func (u UsageError) Error() string { return u.Err.Error() }
func (u UsageError) Unwrap() error { return u.Err }

// Usage marks err as a usage error when it is a setting that cannot work or apply
// (segmentation.SettingError); other errors stay as they are.
func Usage(err error) error {
	var se segmentation.SettingError
	if errors.As(err, &se) {
		return UsageError{err}
	}
	return err
}

// ExitCode is the exit status of a command that returned err: 0; an error's own (one with an
// ExitCode method: a data-parallel rank other than 0, train.RankExit); 2 for a wrong command
// line or a setting that cannot work (segmentation.SettingError); else 1.
func ExitCode(err error) int {
	var own exitCoder
	var u UsageError
	var se segmentation.SettingError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &own):
		return own.ExitCode()
	case errors.As(err, &u), errors.As(err, &se):
		return 2
	}
	return 1
}

// exitCoder is an error that carries its exit status and has been reported already.
type exitCoder interface {
	error
	ExitCode() int
}

// Main runs a command and exits with its status, saying why it failed on stderr (unless the
// error carries its status: what it had to say is said).
func Main(prog string, cmd *cobra.Command) {
	err := cmd.Execute()
	var own exitCoder
	if err != nil && !errors.As(err, &own) {
		fmt.Fprintf(os.Stderr, "%s: %v\n", prog, err)
	}
	os.Exit(ExitCode(err))
}

// MarkUsage makes flag-parsing and argument errors of cmd and its subcommands usage errors.
func MarkUsage(cmd *cobra.Command) {
	cmd.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return UsageError{err} })
	if check := cmd.Args; check != nil {
		cmd.Args = func(cmd *cobra.Command, args []string) error {
			if err := check(cmd, args); err != nil {
				return UsageError{err}
			}
			return nil
		}
	}
	for _, sub := range cmd.Commands() {
		MarkUsage(sub)
	}
}

// RefuseIdle is a usage error naming those of flags that the user set: they do nothing in
// this mode, and silently ignoring them would let the user believe they did.
func RefuseIdle(cmd *cobra.Command, mode string, flags ...string) error {
	var set []string
	for _, f := range flags {
		if cmd.Flags().Changed(f) {
			set = append(set, "--"+f)
		}
	}
	if len(set) == 0 {
		return nil
	}
	return UsageError{fmt.Errorf("%s: not used %s", strings.Join(set, ", "), mode)}
}

// ParseSize reads "HxW" or "N".
func ParseSize(s string) (int, int, error) {
	parts := strings.Split(strings.ToLower(s), "x")
	if len(parts) == 1 {
		parts = append(parts, parts[0])
	}
	if len(parts) != 2 {
		return 0, 0, fmt.Errorf("size %q: want HxW, e.g. 512x512", s)
	}
	var hw [2]int
	for i, p := range parts {
		v, err := strconv.Atoi(strings.TrimSpace(p))
		if err != nil || v < 1 {
			return 0, 0, fmt.Errorf("size %q: want HxW with positive integers, e.g. 512x512", s)
		}
		hw[i] = v
	}
	return hw[0], hw[1], nil
}

// IsTerminal reports whether w is a terminal (a progress bar only makes sense there).
func IsTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}
