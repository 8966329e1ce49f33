package main

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"os"
	"runtime"
	"runtime/pprof"
	"slices"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"gorgonia.org/tensor"

	"github.com/segkit/segkit/dynopool"
	"github.com/segkit/segkit/hrnet"
	"github.com/segkit/segkit/internal/kernels"
	"github.com/segkit/segkit/nn"
)

func newBenchCmd() *cobra.Command {
	var (
		model, resize, profile string
		batch, crop, iters     int
		classes                int
		asJSON, opTimes        bool
		sweep                  bool
		splitWorkers           string
	)
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Time a training step and an inference forward (compare with tools/reference/bench.py)",
		Long: `bench times, after a warm-up, the median of --iters training steps (forward, cross-entropy on the
logits up-sampled to the crop, the GMACs loss in DynOPool mode, backward, SGD step; alphas not
stepped, so the sizes stay put) and of inference forwards, on random data; it reports peak RSS,
GMACs, the GFLOP/s achieved and the Go heap allocated per iteration; --cpuprofile samples are
labelled phase=train or phase=infer, --op-times adds the time per kind of op. Compare with
tools/reference/bench.py run with the same settings (scripts/bench.sh runs both).

--threads-sweep runs the bench at 1, 2, 4, … threads up to every core this process may use and
reports each one's speed-up and parallel efficiency over 1 thread. It then models machines with
more cores (--split-workers, by default 16 and 64): with the kernels' Workers set to each count,
the code sizes its blocks and chunks as on that many cores; one training step and one inference
run with every work item timed alone, and each op's expected load balance is the one-core time
over workers × the busiest goroutine's share (items assigned as the code assigns them). With
--json the sweep is one line: {"threads_sweep": [bench rows], "work_split": {…}}.`,
		Example: "  segtrain bench --model w48 --resize fixed --batch 2 --crop 512 --json",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if batch < 2 || crop < 32 || iters < 1 {
				return usageError{fmt.Errorf("--batch ≥ 2, --crop ≥ 32 and --iters ≥ 1 (got %d, %d, %d)", batch, crop, iters)}
			}
			m, err := hrnet.New(model, classes, hrnet.Resize(resize))
			if err != nil {
				return usageError{err}
			}
			m.Budget = dynopool.Budget{Lambda: 0.1, Hinge: true, Limit: 1}
			if sweep {
				return runThreadsSweep(cmd.OutOrStdout(), m, batch, crop, iters, splitWorkers, asJSON)
			}
			if profile != "" {
				f, err := os.Create(profile)
				if err != nil {
					return err
				}
				defer f.Close()
				if err := pprof.StartCPUProfile(f); err != nil {
					return err
				}
				defer pprof.StopCPUProfile()
			}
			res, err := bench(m, batch, crop, iters, opTimes)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if asJSON {
				return json.NewEncoder(out).Encode(res)
			}
			fmt.Fprintf(out, "HRNetV2-%s %s, batch %d, %d×%d, %s kernels: train step %.1f ms (%.2f images/s, %.0f GFLOP/s), inference %.1f ms (%.2f images/s), %.3f GMACs per image, peak RSS %.0f MB\n",
				model, resize, batch, crop, crop, res["kernels"], res["train_step_ms"], res["train_images_per_s"], res["train_gflops"],
				res["infer_ms"], res["infer_images_per_s"], res["gmacs"], res["peak_rss_mb"])
			fmt.Fprintf(out, "activations (planned memory, shared by both graphs): %.0f MB\n", res["activations_mb"])
			for _, phase := range []string{"train", "infer"} {
				if t, ok := res[phase+"_op_ms"].(map[string]float64); ok {
					printOpTimes(out, phase, t)
				}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&model, "model", "w18_small_v2", "HRNet config")
	f.StringVar(&resize, "resize", "fixed", "fixed or dynopool")
	f.IntVar(&batch, "batch", 2, "batch size")
	f.IntVar(&crop, "crop", 512, "square input size")
	f.IntVar(&iters, "iters", 5, "timed iterations (after one warm-up)")
	f.IntVar(&classes, "classes", 21, "number of classes")
	f.BoolVar(&asJSON, "json", false, "print one JSON line")
	f.StringVar(&profile, "cpuprofile", "", "write a CPU profile (go tool pprof) here")
	f.BoolVar(&opTimes, "op-times", false, "also report the wall time per iteration of each kind of op")
	f.BoolVar(&sweep, "threads-sweep", false, "time 1, 2, 4, … threads up to every core: speed-up and parallel efficiency, and the work split's expected load balance on --split-workers")
	f.StringVar(&splitWorkers, "split-workers", "16,64", `with --threads-sweep: worker counts to model the kernels' load balance for ("": none)`)
	return cmd
}

// printOpTimes prints op kinds by time, longest first.
func printOpTimes(w io.Writer, phase string, ms map[string]float64) {
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

// benchSteps returns, on random data, a training step (SGD included; alphas not stepped) and an
// inference forward, both on net.
func benchSteps(m *hrnet.Model, batch, crop int) (net *nn.Net, train, infer func() error) {
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
	train = func() error {
		_, err := net.TrainStep(x, labels)
		if err == nil {
			opt.Step(net.Params)
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
	return net, train, infer
}

func bench(m *hrnet.Model, batch, crop, iters int, opTimes bool) (map[string]any, error) {
	net, step, forward := benchSteps(m, batch, crop)
	train, err := timed("train", iters, opTimes, step)
	if err != nil {
		return nil, err
	}
	infer, err := timed("infer", iters, opTimes, forward)
	if err != nil {
		return nil, err
	}
	activations := float64(net.ActivationBytes()) / 1e6 // shared by the training and inference graphs
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	macs := float64(m.MACs(net.Params, crop, crop))
	tr, in := train.median.Seconds(), infer.median.Seconds()
	res := map[string]any{
		// kernels: avx512, avx2 or portable (SEGKIT_ISA picks a lesser one than the CPU's).
		"model": m.Name, "resize": string(m.Resize), "batch": batch, "crop": crop, "iters": iters, "kernels": kernels.Path(),
		"train_step_ms": round1(tr * 1e3), "train_images_per_s": round3(float64(batch) / tr),
		"infer_ms": round1(in * 1e3), "infer_images_per_s": round3(float64(batch) / in),
		"peak_rss_mb": round1(float64(ru.Maxrss) / 1024), "activations_mb": round1(activations), "gmacs": round3(macs / 1e9),
		// A training step costs about 3 forward passes (forward, data and weight gradients).
		"train_gflops": round1(3 * 2 * macs * float64(batch) / tr / 1e9),
		"infer_gflops": round1(2 * macs * float64(batch) / in / 1e9),
		// Go heap allocated per timed iteration: flat (no growth) once the graphs are built.
		"train_alloc_kb": round1(train.allocKB), "infer_alloc_kb": round1(infer.allocKB),
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
