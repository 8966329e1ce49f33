//go:build !linux

package memcheck

import "time"

// selfPeak is unknown here: the memory bound is then not checked.
func selfPeak() int64 { return -1 }

// watch stops the child after limit only.
func watch(_ int, _ int64, limit time.Duration, kill func()) func() string {
	t := time.AfterFunc(limit, kill)
	return func() string {
		if !t.Stop() {
			return "stopped after " + limit.String()
		}
		return ""
	}
}
