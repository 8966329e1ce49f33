// Package bench times the training step a run executes (train.Step) and an inference forward,
// on random data, and models how the kernels' work splits over more cores.
package bench

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"runtime"
	"runtime/pprof"
	"slices"
	"syscall"
	"time"

	"gorgonia.org/tensor"

	"github.com/segkit/segkit/dynopool"
	"github.com/segkit/segkit/hrnet"
	"github.com/segkit/segkit/internal/kernels"
	"github.com/segkit/segkit/nn"
	"github.com/segkit/segkit/segmentation"
	"github.com/segkit/segkit/segmentation/train"
)

// Model is the model bench times: HRNetV2-name with resize's resizing for classes classes,
// with a run's default DynOPool design and the GMACs loss of its default budget.
func Model(name, resize string, classes int) (*hrnet.Model, error) {
	m, err := hrnet.New(name, classes, hrnet.Resize(resize))
	if err != nil {
		return nil, err
	}
	if err := segmentation.DefaultConfig().ApplyDesign(m); err != nil {
		return nil, err
	}
	m.Budget = dynopool.Budget{Lambda: 0.1, Hinge: true, Limit: 1}
	return m, nil
}

// PrintOpTimes prints op kinds by time, longest first.
func PrintOpTimes(w io.Writer, phase string, ms map[string]float64) {
	kinds := slices.Collect(maps.Keys(ms))
	slices.SortFunc(kinds, func(a, b string) int { return cmp.Compare(ms[b], ms[a]) })
	var total float64
	for _, v := range ms {
		total += v
	}
	fmt.Fprintf(w, "%s, ms per iteration by op (%.1f ms in ops):\n", phase, total)
	for _, k := range kinds {
		fmt.Fprintf(w, "  %-24s %8.1f  %5.1f%%\n", k, ms[k], 100*ms[k]/total)
	}
}

// timeOps starts summing op times (nn.OpTimes) when on, and returns a function that stops and
// reports them in ms per iteration.
func timeOps(on bool, iters int) func() map[string]float64 {
	if !on {
		return func() map[string]float64 { return nil }
	}
	nn.OpTimes = map[string]time.Duration{}
	return func() map[string]float64 {
		ms := map[string]float64{}
		for k, d := range nn.OpTimes {
			ms[k] = round1(float64(d.Microseconds()) / 1e3 / float64(iters))
		}
		nn.OpTimes = nil
		return ms
	}
}

// benchSteps returns, on random data, the training step of a run (train.Step: SGD and the
// alphas' clamp included; the alphas' learning rate is 0, so the sizes stay put) and an
// inference forward, both on net.
func benchSteps(m *hrnet.Model, batch, crop int) (net *nn.Net, trainStep, infer func() error) {
	rng := rand.New(rand.NewPCG(1, 1))
	x := tensor.New(tensor.Of(tensor.Float32), tensor.WithShape(batch, 3, crop, crop))
	for i, v := 0, x.Float32s(); i < len(v); i++ {
		v[i] = float32(rng.NormFloat64())
	}
	lab := make([]int32, batch*crop*crop)
	for i := range lab {
		lab[i] = int32(rng.IntN(m.Classes))
	}
	labels := tensor.New(tensor.WithShape(batch, crop, crop), tensor.WithBacking(lab))
	net = nn.NewNet(m, 0)
	opt := &nn.SGD{LR: 0.01, Momentum: 0.9, WeightDecay: 5e-4, Groups: map[string]nn.Group{dynopool.Group: {LRMult: 0}}}
	step := train.Step{Net: net, Model: m, Opt: opt, H: crop, W: crop}
	trainStep = func() error {
		_, bad, err := step.Train(x, labels)
		if err == nil && bad != "" {
			err = errors.New(bad)
		}
		return err
	}
	var gr *nn.Graph
	infer = func() error {
		if gr == nil {
			var err error
			if gr, err = net.Graph(nn.Inference, x.Shape()); err != nil {
				return err
			}
		}
		return gr.Forward(x, nil)
	}
	return net, trainStep, infer
}

// Run times, after a warm-up, the median of iters training steps and of iters inference
// forwards on random batches of batch crop×crop images, and reports them with the peak RSS,
// the GMACs, the GFLOP/s achieved and the Go heap allocated per iteration; with opTimes, the
// time per kind of op too (the profile labels are phase=train and phase=infer). A batch of one
// times inference alone (training's batch norm needs two images): the train fields are nil.
func Run(m *hrnet.Model, batch, crop, iters int, opTimes bool) (map[string]any, error) {
	net, step, forward := benchSteps(m, batch, crop)
	var train timing
	var err error
	if batch >= 2 {
		if train, err = timed("train", iters, opTimes, step); err != nil {
			return nil, err
		}
	}
	infer, err := timed("infer", iters, opTimes, forward)
	if err != nil {
		return nil, err
	}
	activations := float64(net.ActivationBytes()) / 1e6 // shared by the training and inference graphs
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	macs := float64(m.MACs(net.Params, crop, crop))
	in := infer.median.Seconds()
	res := map[string]any{
		// kernels: avx512, avx2 or portable (SEGKIT_ISA picks a lesser one than the CPU's).
		"model": m.Name, "resize": string(m.Resize), "batch": batch, "crop": crop, "iters": iters, "kernels": kernels.Path(),
		"infer_ms": round1(in * 1e3), "infer_images_per_s": round3(float64(batch) / in),
		"peak_rss_mb": round1(float64(ru.Maxrss) / 1024), "activations_mb": round1(activations), "gmacs": round3(macs / 1e9),
		"infer_gflops": round1(2 * macs * float64(batch) / in / 1e9),
		// Go heap allocated per timed iteration: flat (no growth) once the graphs are built.
		"infer_alloc_kb": round1(infer.allocKB),
		// Without a training step (batch 1) its fields are nil.
		"train_step_ms": nil, "train_images_per_s": nil, "train_gflops": nil, "train_alloc_kb": nil,
	}
	if batch >= 2 {
		tr := train.median.Seconds()
		res["train_step_ms"], res["train_images_per_s"] = round1(tr*1e3), round3(float64(batch)/tr)
		// A training step costs about 3 forward passes (forward, data and weight gradients).
		res["train_gflops"] = round1(3 * 2 * macs * float64(batch) / tr / 1e9)
		res["train_alloc_kb"] = round1(train.allocKB)
	}
	if opTimes {
		res["train_op_ms"], res["infer_op_ms"] = train.ops, infer.ops
	}
	return res, nil
}

type timing struct {
	median  time.Duration
	allocKB float64            // Go heap allocated per timed iteration
	ops     map[string]float64 // ms per iteration by op kind, with --op-times
}

// timed runs step once to warm up, then iters times, with profile samples labelled
// phase=name (go tool pprof -tagfocus phase=infer).
func timed(name string, iters int, opTimes bool, step func() error) (timing, error) {
	var t timing
	var err error
	pprof.Do(context.Background(), pprof.Labels("phase", name), func(ctx context.Context) {
		kernels.LabelCrew(ctx)
		if err = step(); err != nil {
			return
		}
		stop := timeOps(opTimes, iters)
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		times := make([]time.Duration, iters)
		for i := range times {
			start := time.Now()
			if err = step(); err != nil {
				return
			}
			times[i] = time.Since(start)
		}
		runtime.ReadMemStats(&after)
		t.ops = stop()
		t.allocKB = float64(after.TotalAlloc-before.TotalAlloc) / 1024 / float64(iters)
		slices.Sort(times)
		t.median = times[len(times)/2]
	})
	return t, err
}

func round1(v float64) float64 { return float64(int64(v*10+0.5)) / 10 }
func round3(v float64) float64 { return float64(int64(v*1000+0.5)) / 1000 }
