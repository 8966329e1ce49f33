package dynopool

import "fmt"

// Tracker remembers the output size of every pool and reports when one changes (a size change
// means a new graph).
type Tracker struct {
	Log  func(msg string) // called with "name: H×W → H'×W'" on every change, if set
	last map[string][2]int
}

// Observe records the size of pool name and reports whether it changed since the last call.
func (t *Tracker) Observe(name string, h, w int) bool {
	if t.last == nil {
		t.last = map[string][2]int{}
	}
	old, seen := t.last[name]
	t.last[name] = [2]int{h, w}
	if !seen || old == [2]int{h, w} {
		return false
	}
	if t.Log != nil {
		t.Log(fmt.Sprintf("%s: %d×%d → %d×%d", name, old[0], old[1], h, w))
	}
	return true
}
