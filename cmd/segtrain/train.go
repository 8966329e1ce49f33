package main

import (
	"fmt"
	"sync/atomic"

	"github.com/spf13/cobra"

	"github.com/segkit/segkit/cmd/internal/cli"
	"github.com/segkit/segkit/parallel"
	"github.com/segkit/segkit/segmentation/train"
)

// beforeTrain, when set (by tests), readies each run before it trains: the MPI test injects
// its faults there (Run.BeforeStep); the product has no fault hook.
var beforeTrain func(*train.Run)

func runTraining(cmd *cobra.Command, t *cli.TrainFlags) error {
	if err := t.ApplyThreads(); err != nil {
		return err
	}
	out := cmd.OutOrStdout()
	run := &train.Run{Out: out, Resume: t.Resume, NoBar: t.NoBar || !cli.IsTerminal(out), Interrupt: &atomic.Bool{}}
	var err error
	if t.Resume != "" {
		// The checkpoint holds the settings; Cfg only carries the flags that may override them.
		run.Cfg = t.Cfg
		if run.Override, err = t.ResumeOverrides(); err != nil {
			return err
		}
	} else {
		var said string
		if run.Cfg, said, err = t.Config(); err != nil {
			return err
		}
		fmt.Fprint(out, said)
	}
	// Several ranks (mpirun, srun): this process trains its share; without a launcher, alone.
	comm, err := parallel.Open(parallel.Options{Timeout: t.Timeout})
	if err != nil {
		return err
	}
	run.Comm = comm
	if comm.Size() > 1 {
		cli.WarnBound(cmd.ErrOrStderr(), "segtrain", comm.Rank(), comm.Size(), t.Threads)
	}
	if beforeTrain != nil {
		beforeTrain(run)
	}
	defer cli.Interrupt(run.Interrupt, cmd.ErrOrStderr(), "segtrain")()
	sum, err := run.Train()
	if err := cli.Usage(train.Ranks{Comm: comm}.End(err, cmd.ErrOrStderr(), "segtrain")); err != nil {
		return err
	}
	fmt.Fprintf(out, "\ndone in %.0f s: %d iterations, final mIoU %.2f (aAcc %.2f, mAcc %.2f), best %.2f at iteration %d\n",
		sum.Seconds, sum.Iters, 100*sum.Final.MIoU, 100*sum.Final.AAcc, 100*sum.Final.MAcc, 100*sum.BestMIoU, sum.BestIter)
	crop := fmt.Sprint(sum.Crop)
	if sum.CropW != 0 && sum.CropW != sum.Crop {
		crop = fmt.Sprintf("%dx%d", sum.Crop, sum.CropW)
	}
	fmt.Fprintf(out, "branch sizes at the %s crop: %v, %.3f GMACs per image\nrun directory: %s\n", crop, sum.Sizes, sum.GMACs, sum.Dir)
	return nil
}
