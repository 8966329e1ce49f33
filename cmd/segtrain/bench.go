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
				return usageError{Err: fmt.Errorf("--batch ≥ 2, --crop ≥ 32 and --iters ≥ 1 (got %d, %d, %d)", batch, crop, iters)}
			}
			m, err := bench.Model(model, resize, classes)
			if err != nil {
				return usageError{Err: err}
			}
			if sweep {
				return cli.Usage(bench.ThreadsSweep(cmd.OutOrStdout(), m, batch, crop, iters, splitWorkers, asJSON))
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
			res, err := bench.Run(m, batch, crop, iters, opTimes)
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
					bench.PrintOpTimes(out, phase, t)
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
