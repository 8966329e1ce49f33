package bench

import (
	"slices"
	"testing"
)

func TestThreadCounts(t *testing.T) {
	for most, want := range map[int][]int{1: {1}, 2: {1, 2}, 6: {1, 2, 4, 6}, 8: {1, 2, 4, 8}} {
		if got := ThreadCounts(most); !slices.Equal(got, want) {
			t.Errorf("ThreadCounts(%d) = %v, want %v", most, got, want)
		}
	}
}
