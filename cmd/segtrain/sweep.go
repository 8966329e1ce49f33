package main

import (
	"fmt"
	"io"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/segkit/segkit/cmd/internal/cli"
	"github.com/segkit/segkit/parallel"
	"github.com/segkit/segkit/segmentation/sweep"
	"github.com/segkit/segkit/segmentation/train"
)

func newSweepCmd() *cobra.Command {
	var (
		budgets = floatList{0.5, 0.75, 1}
		scales  = floatList{0.5, 0.75, 1}
		seeds   = 3
		par     int
		report  string
	)
	cmd := &cobra.Command{
		Use:   "sweep [training flags]",
		Short: "DynOPool at several GMACs budgets against the fixed model at several input scales",
		Long: `sweep shows whether DynOPool pays off on your data: it trains DynOPool once per GMACs budget
and seed, and the fixed model once per input scale and seed (the images resized by that scale
for training and evaluation: a fixed model on smaller inputs is cheaper too), all with the same
training flags, under <out>/<name>/. It then measures every run at the test size (conv GMACs
per image, images/s of inference, the learned branch sizes) and writes summary.json,
summary.csv and frontier.png (mIoU against GMACs, mean ± std over the seeds, the Pareto front
ringed). Running it again continues: finished runs are skipped, interrupted ones resumed.
--report DIR redraws the summary from the finished runs.`,
		Example: `  segtrain sweep --iters 800 --seeds 2 --name demo_sweep
  segtrain sweep --data data/camvid --model w18_small_v2 --gmacs-budget 0.5,0.75 --baseline-scales 0.75,1 --parallel 2
  segtrain sweep --report runs/demo_sweep`,
		Args: cobra.NoArgs,
	}
	t := cli.AddTrainFlags(cmd.Flags())
	// --gmacs-budget is a list here: one DynOPool run per budget.
	fb := cmd.Flags().Lookup("gmacs-budget")
	fb.Value, fb.DefValue, fb.Usage = &budgets, budgets.String(), `DynOPool GMACs budgets, fractions of the fixed model's GMACs (a run each; "": none)`
	t.Forget("gmacs-budget")
	cmd.Flags().Var(&scales, "baseline-scales", `input scales of the fixed baselines (a run each; "": none)`)
	cmd.Flags().IntVar(&seeds, "seeds", seeds, "runs per budget and scale (seeds --seed, --seed+1, …)")
	cmd.Flags().IntVar(&par, "parallel", 1, "runs at once (the threads split between them)")
	cmd.Flags().StringVar(&report, "report", "", "redraw the summary of this sweep directory's finished runs")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		out := cmd.OutOrStdout()
		if report != "" {
			if err := refuseOthers(cmd, "report"); err != nil {
				return err
			}
			rep, err := sweep.ReportSweep(report)
			if err != nil {
				return err
			}
			fmt.Fprint(out, rep.Table())
			fmt.Fprintf(out, "wrote %s\n", strings.Join([]string{"summary.json", "summary.csv", "frontier.png"}, ", "))
			return nil
		}
		return runSweep(cmd, t, budgets, scales, seeds, par)
	}
	return cmd
}

// refuseOthers is a usage error naming every flag set besides keep.
func refuseOthers(cmd *cobra.Command, keep string) error {
	var set []string
	cmd.Flags().Visit(func(f *pflag.Flag) {
		if f.Name != keep {
			set = append(set, "--"+f.Name)
		}
	})
	if len(set) == 0 {
		return nil
	}
	return usageError{Err: fmt.Errorf("%s: not used with --%s (the sweep's settings are in its sweep.json)", strings.Join(set, ", "), keep)}
}

// floatList is a comma-separated list of numbers; "" is the empty list (no DynOPool runs, or
// no fixed baselines).
type floatList []float64

func (l *floatList) String() string {
	parts := make([]string, len(*l))
	for i, v := range *l {
		parts[i] = strconv.FormatFloat(v, 'f', -1, 64)
	}
	return strings.Join(parts, ",")
}

func (l *floatList) Set(s string) error {
	var out floatList
	if strings.TrimSpace(s) == "" {
		*l = out
		return nil
	}
	for _, part := range strings.Split(s, ",") {
		v, err := strconv.ParseFloat(strings.TrimSpace(part), 64)
		if err != nil {
			return fmt.Errorf("%q: a comma-separated list of numbers", s)
		}
		out = append(out, v)
	}
	*l = out
	return nil
}

func (l *floatList) Type() string { return "list" }

// runSweep runs (or continues) the sweep that the flags describe, and prints its report.
func runSweep(cmd *cobra.Command, t *cli.TrainFlags, budgets, scales []float64, seeds, par int) error {
	out := cmd.OutOrStdout()
	if err := t.ApplyThreads(); err != nil {
		return err
	}
	for _, f := range []string{"resume", "resize"} {
		if cmd.Flags().Changed(f) {
			return usageError{Err: fmt.Errorf("--%s: a sweep sets each run's (run it again to continue it)", f)}
		}
	}
	cfg, said, err := t.Config()
	if err != nil {
		return err
	}
	fmt.Fprint(out, said)
	name := cfg.Name
	if name == "" {
		name = "sweep_" + cfg.Model
	}
	s := &sweep.Sweep{Base: cfg, Budgets: budgets, Scales: scales, Seeds: seeds, Parallel: par,
		Dir: filepath.Join(cfg.Out, name), Out: out}
	s.Base.Name = ""
	// Under mpirun or srun every run is data-parallel over the ranks.
	comm, err := parallel.Open(parallel.Options{Timeout: t.Timeout})
	if err != nil {
		return err
	}
	if s.Comm = comm; comm.Rank() > 0 {
		s.Out = io.Discard
	}
	if err := s.Validate(); err != nil {
		return cli.Usage(err)
	}
	fmt.Fprintf(s.Out, "sweep %s: %d runs\n", s.Dir, len(s.Plan()))
	rep, err := s.Run()
	if err := cli.Usage(train.Ranks{Comm: comm}.End(err, cmd.ErrOrStderr(), "segtrain")); err != nil {
		return err
	}
	fmt.Fprint(out, "\n"+rep.Table())
	fmt.Fprintf(out, "wrote %s\n", filepath.Join(s.Dir, "{summary.json,summary.csv,frontier.png}"))
	return nil
}
