package main

import (
	"encoding/json"
	"fmt"
	"os"
	"runtime/pprof"

	"github.com/segkit/segkit/cmd/internal/cli"
	"github.com/segkit/segkit/segmentation/bench"
	"github.com/spf13/cobra"
)

func newBenchCmd() *cobra.Command {
	var o benchOptions
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Time a training step and an inference forward (compare with tools/reference/bench.py)",
		Long: `bench times, after a warm-up, the median of --iters training steps (forward, cross-entropy on the
logits up-sampled to the crop, the GMACs loss in DynOPool mode, backward, SGD step; alphas not
stepped, so the sizes stay put) and of inference forwards, on random data (--batch 1: inference
alone, the case of a service segmenting one image at a time); it reports peak RSS,
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
		RunE:    func(cmd *cobra.Command, _ []string) error { return runBench(cmd, o) },
	}
	f := cmd.Flags()
	f.StringVar(&o.model, "model", "w18_small_v2", "HRNet config")
	f.StringVar(&o.resize, "resize", "fixed", "fixed or dynopool")
	f.IntVar(&o.batch, "batch", 2, "batch size")
	f.IntVar(&o.crop, "crop", 512, "square input size")
	f.IntVar(&o.iters, "iters", 5, "timed iterations (after one warm-up)")
	f.IntVar(&o.classes, "classes", 21, "number of classes")
	f.BoolVar(&o.asJSON, "json", false, "print one JSON line")
	f.StringVar(&o.profile, "cpuprofile", "", "write a CPU profile (go tool pprof) here")
	f.BoolVar(&o.opTimes, "op-times", false, "also report the wall time per iteration of each kind of op")
	f.BoolVar(&o.sweep, "threads-sweep", false, "time 1, 2, 4, … threads up to every core: speed-up and parallel efficiency, and the work split's expected load balance on --split-workers")
	f.StringVar(&o.splitWorkers, "split-workers", "16,64", `with --threads-sweep: worker counts to model the kernels' load balance for ("": none)`)
	return cmd
}

// benchOptions are bench's flags.
type benchOptions struct {
	model, resize, profile string
	batch, crop, iters     int
	classes                int
	asJSON, opTimes        bool
	sweep                  bool
	splitWorkers           string
}

func runBench(cmd *cobra.Command, o benchOptions) error {
	if o.batch < 1 || o.crop < 32 || o.iters < 1 {
		return usageError{Err: fmt.Errorf("--batch ≥ 1, --crop ≥ 32 and --iters ≥ 1 (got %d, %d, %d)", o.batch, o.crop, o.iters)}
	}
	if o.batch < 2 && o.sweep {
		return usageError{Err: fmt.Errorf("--threads-sweep times training too: --batch ≥ 2")}
	}
	m, err := bench.Model(o.model, o.resize, o.classes)
	if err != nil {
		return usageError{Err: err}
	}
	if o.sweep {
		return cli.Usage(bench.ThreadsSweep(cmd.OutOrStdout(), m, o.batch, o.crop, o.iters, o.splitWorkers, o.asJSON))
	}
	if o.profile != "" {
		f, err := os.Create(o.profile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	res, err := bench.Run(m, o.batch, o.crop, o.iters, o.opTimes)
	if err != nil {
		return err
	}
	out := cmd.OutOrStdout()
	if o.asJSON {
		return json.NewEncoder(out).Encode(res)
	}
	train := "no train step (batch 1)"
	if o.batch >= 2 {
		train = fmt.Sprintf("train step %.1f ms (%.2f images/s, %.0f GFLOP/s)", res["train_step_ms"], res["train_images_per_s"], res["train_gflops"])
	}
	fmt.Fprintf(out, "HRNetV2-%s %s, batch %d, %d×%d, %s kernels: %s, inference %.1f ms (%.2f images/s), %.3f GMACs per image, peak RSS %.0f MB\n",
		o.model, o.resize, o.batch, o.crop, o.crop, res["kernels"], train, res["infer_ms"], res["infer_images_per_s"], res["gmacs"], res["peak_rss_mb"])
	fmt.Fprintf(out, "activations (planned memory, shared by both graphs): %.0f MB\n", res["activations_mb"])
	for _, phase := range []string{"train", "infer"} {
		if t, ok := res[phase+"_op_ms"].(map[string]float64); ok {
			bench.PrintOpTimes(out, phase, t)
		}
	}
	return nil
}
