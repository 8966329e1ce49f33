package train

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/segkit/segkit/hrnet"
	"github.com/segkit/segkit/internal/atomicfile"
	"github.com/segkit/segkit/nn"
	"github.com/segkit/segkit/segmentation/checkpoint"
)

func (r *Run) printf(format string, args ...any) {
	if r.progress != nil {
		r.progress.Clear()
	}
	fmt.Fprintf(r.Out, format, args...)
}

// openLog opens train.jsonl for appending, first dropping entries past the checkpoint (left by
// an interrupted run), so a resumed log reads like an uninterrupted one; a run started again
// from iteration 0 keeps none.
func (r *Run) openLog() error {
	path := filepath.Join(r.dir, "train.jsonl")
	var keep []string
	if raw, err := os.ReadFile(path); err == nil && r.state.Iter > 0 {
		for _, line := range strings.Split(string(raw), "\n") {
			var e struct{ Iter int }
			if json.Unmarshal([]byte(line), &e) == nil && e.Iter <= r.state.Iter && line != "" {
				keep = append(keep, line)
			}
		}
	}
	content := strings.Join(keep, "\n")
	if content != "" {
		content += "\n"
	}
	if err := atomicfile.WriteFile(path, []byte(content), 0o644); err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0o644)
	r.logFile = f
	return err
}

func (r *Run) writeLog(entry map[string]any) {
	if r.logFile == nil { // not rank 0
		return
	}
	b, _ := json.Marshal(entry)
	r.logFile.Write(append(b, '\n'))
}

func (r *Run) gmacs() float64 {
	h, w := r.Cfg.CropSize()
	return math.Round(float64(r.model.MACs(r.net.Params, h, w))/1e6) / 1e3
}

func (r *Run) branchSizes() [][2]int {
	h, w := r.Cfg.CropSize()
	s := r.model.LevelSizes(r.net.Params, h, w)
	return [][2]int{s[2], s[3], s[4], s[5]}
}

// observeSizes logs every DynOPool size change.
func (r *Run) observeSizes() {
	if r.model.Resize != hrnet.DynOPool {
		return
	}
	h, w := r.Cfg.CropSize()
	s := r.model.LevelSizes(r.net.Params, h, w)
	for l := 1; l < len(s); l++ {
		r.tracker.Observe("level "+hrnet.LevelNames[l], s[l][0], s[l][1])
	}
}

// report logs the sizes' changes, moves the progress bar and, every LogEvery iterations,
// writes a log entry with the mean loss since the previous one.
func (r *Run) report(losses nn.Losses) {
	c, m := r.Cfg, &r.meter
	m.images += c.Batch
	m.lossSum += float64(losses.Total)
	m.lossN++
	r.observeSizes()
	if r.progress != nil {
		desc := fmt.Sprintf("loss %.3f lr %.2g %.0f img/s", losses.Total, r.opt.LR, float64(c.Batch*(r.state.Iter-m.startIter))/time.Since(m.start).Seconds())
		if r.model.Resize == hrnet.DynOPool {
			desc += fmt.Sprintf(" GMACs %.3f sizes %v", r.gmacs(), r.branchSizes())
		}
		r.progress.Describe(desc)
		r.progress.Set(r.state.Iter)
	}
	if r.state.Iter%max(c.LogEvery, 1) != 0 {
		return
	}
	now := time.Now()
	ips := 0.0
	if !m.lastLog.IsZero() {
		ips = float64(m.images) / now.Sub(m.lastLog).Seconds()
	}
	m.lastLog, m.images = now, 0
	entry := map[string]any{"iter": r.state.Iter, "loss": m.lossSum / float64(m.lossN), "ce": losses.CE, "lr": r.opt.LR,
		"images_per_s": math.Round(ips*100) / 100, "gmacs": r.gmacs(), "branch_sizes": r.branchSizes()}
	m.lossSum, m.lossN = 0, 0
	r.writeLog(entry)
	if r.NoBar {
		r.printf("iter %d/%d loss %.4f lr %.3g %.1f img/s GMACs %.3f sizes %v\n", r.state.Iter, c.Iters,
			entry["loss"], r.opt.LR, ips, entry["gmacs"], entry["branch_sizes"])
	}
}

// checkpoint writes ckpt_iter_<n>.safetensors and keeps the newest Keep of them.
func (r *Run) checkpoint() error {
	if err := r.weightsAgree(); err != nil || !r.ranks.lead() {
		return err
	}
	if err := checkpoint.SaveCheckpoint(r.checkpointPath(), r.net.Params, r.state); err != nil {
		return err
	}
	r.written = r.state.Iter
	files, _ := filepath.Glob(filepath.Join(r.dir, "ckpt_iter_*.safetensors"))
	slices.Sort(files)
	for len(files) > max(r.Cfg.Keep, 1) {
		if err := os.Remove(files[0]); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
		files = files[1:]
	}
	return nil
}

// checkpointPath is the checkpoint of the current iteration.
func (r *Run) checkpointPath() string {
	return filepath.Join(r.dir, fmt.Sprintf("ckpt_iter_%07d.safetensors", r.state.Iter))
}
