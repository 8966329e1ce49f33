package train

import (
	"errors"
	"fmt"
	"path/filepath"

	"github.com/segkit/segkit/dataset"
	"github.com/segkit/segkit/hrnet"
	"github.com/segkit/segkit/metrics"
	"github.com/segkit/segkit/segmentation"
	"github.com/segkit/segkit/segmentation/checkpoint"
	"github.com/segkit/segkit/segmentation/infer"
)

// evaluate runs the evaluation split, prints the table and keeps the best checkpoint. The
// Interrupt stops it between images (infer.ErrStopped on every rank); with SkipBad, samples that
// fail to load are left out and listed.
func (r *Run) evaluate() (metrics.Result, error) {
	val, index := r.val, func(i int) int { return i }
	if n := r.Comm.Size(); n > 1 { // image i on rank i mod n; the confusion counts are summed
		var idx []int
		for i := r.Comm.Rank(); i < r.val.Len(); i += n {
			idx = append(idx, i)
		}
		val, index = segmentation.Subset{Dataset: r.val, Idx: idx}, func(i int) int { return idx[i] }
	}
	hooks := infer.Hooks{Stop: func(i int) bool {
		if r.evalImage != nil {
			r.evalImage(i)
		}
		return r.Interrupt != nil && r.Interrupt.Load()
	}}
	if r.Cfg.SkipBad {
		hooks.Skip = func(i int, err error) { r.skipVal(index(i), err) }
	}
	conf, err := infer.ForConfig(r.Cfg).EvaluateWith(r.net, val, nil, hooks)
	stopped := errors.Is(err, infer.ErrStopped)
	if err != nil && !stopped {
		return metrics.Result{}, err
	}
	// One rank stopped (its Ctrl-C came first): every rank drops this evaluation.
	if stopped, err = r.ranks.anyRank(stopped); err != nil {
		return metrics.Result{}, err
	}
	if stopped {
		return metrics.Result{}, infer.ErrStopped
	}
	if err := r.Comm.SumInt64(conf.Counts()); err != nil {
		return metrics.Result{}, err
	}
	res := conf.Result(r.classes)
	r.printf("\niteration %d: mIoU %.2f aAcc %.2f mAcc %.2f, GMACs %.3f, branch sizes %v\n%s", r.state.Iter,
		100*res.MIoU, 100*res.AAcc, 100*res.MAcc, r.gmacs(), r.branchSizes(), res.Table())
	r.writeLog(map[string]any{"iter": r.state.Iter, "val_miou": res.MIoU, "val_aacc": res.AAcc, "val_macc": res.MAcc, "gmacs": r.gmacs()})
	if r.ranks.lead() {
		if err := WritePlots(r.dir, r.model.Resize == hrnet.DynOPool); err != nil {
			r.printf("plots: %v\n", err) // a plot is not worth stopping a run for
		}
	}
	if res.MIoU > r.state.BestMIoU {
		r.state.BestMIoU, r.state.BestIter = res.MIoU, r.state.Iter
		if !r.ranks.lead() {
			r.last = &res
			return res, nil
		}
		if err := checkpoint.SaveCheckpoint(filepath.Join(r.dir, "best.safetensors"), r.net.Params, r.state); err != nil {
			return res, err
		}
		// This iteration's checkpoint, written before the evaluation, gets the new best too: a
		// resume from it must not take a worse model for the best (one more write, only when
		// the best improves).
		if r.written == r.state.Iter {
			if err := checkpoint.SaveCheckpoint(r.checkpointPath(), r.net.Params, r.state); err != nil {
				return res, err
			}
		}
	}
	r.last = &res
	return res, nil
}

// skipVal leaves evaluation sample i (of the whole split) out, saying so the first time.
func (r *Run) skipVal(i int, err error) {
	if r.valSeen[i] {
		return
	}
	if r.valSeen == nil {
		r.valSeen = map[int]bool{}
	}
	r.valSeen[i] = true
	s := dataset.Skip{Index: i, What: fmt.Sprintf("%s: %v (evaluation)", r.val.ID(i), err)}
	r.valSkipped = append(r.valSkipped, s)
	r.printf("skipped %s\n", s.What)
}

// finalResult is the evaluation at the last iteration (done by the loop).
func (r *Run) finalResult() (metrics.Result, error) {
	if r.last != nil {
		return *r.last, nil
	}
	return r.evaluate()
}
