package parallel

import (
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// Asynchronous sums pair up by the order they are started in, whatever the other collectives
// do meanwhile: rank 0 calls a SumFloat64 between its two sums, rank 1 before both.
func TestAsyncSumsBesideCollectives(t *testing.T) {
	comms := NewLocal(2, 5*time.Second)
	got := make([][][]float32, 2)
	gotF64 := make([][]float64, 2)
	errs := make([]error, 2)
	var wg sync.WaitGroup
	for r, c := range comms {
		wg.Add(1)
		go func() {
			defer wg.Done()
			a, b := []float32{1, float32(r)}, []float32{10, 20, float32(30 * r)}
			f := []float64{float64(r)}
			var waits []func() error
			if r == 1 {
				errs[r] = c.SumFloat64(f)
			}
			waits = append(waits, c.SumFloat32Async(a))
			if r == 0 {
				errs[r] = c.SumFloat64(f)
			}
			waits = append(waits, c.SumFloat32Async(b))
			for _, wait := range waits {
				errs[r] = errors.Join(errs[r], wait())
			}
			got[r], gotF64[r] = [][]float32{a, b}, f
		}()
	}
	wg.Wait()
	for r := range 2 {
		if errs[r] != nil {
			t.Fatalf("rank %d: %v", r, errs[r])
		}
		if !slices.Equal(got[r][0], []float32{2, 1}) || !slices.Equal(got[r][1], []float32{20, 40, 30}) || gotF64[r][0] != 1 {
			t.Errorf("rank %d: sums %v, %v", r, got[r], gotF64[r])
		}
	}
}

// A rank that fails ends the sums in flight with its error, and every later one with the same:
// the ranks no longer agree which sum is which.
func TestAsyncSumsFail(t *testing.T) {
	comms := NewLocal(2, 5*time.Second)
	first := comms[0].SumFloat32Async([]float32{1})
	second := comms[0].SumFloat32Async([]float32{2})
	comms[1].Abort(errors.New("disk full"))
	for i, wait := range []func() error{first, second, comms[0].SumFloat32Async([]float32{3})} {
		if err := wait(); err == nil || !strings.Contains(err.Error(), "rank 1/2 failed: disk full") {
			t.Errorf("sum %d: error %v", i, err)
		}
	}
}
