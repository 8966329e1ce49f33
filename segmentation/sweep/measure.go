package sweep

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/segkit/segkit/internal/atomicfile"
	"github.com/segkit/segkit/segmentation"
	"github.com/segkit/segkit/segmentation/checkpoint"
	"github.com/segkit/segkit/segmentation/infer"
)

// finished returns nil when the run at dir has finished: its metrics.json holds an mIoU. A
// file that is missing (os.ErrNotExist), empty or invalid is an error saying so.
func finished(dir string) error {
	path := filepath.Join(dir, "metrics.json")
	raw, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var m struct {
		MIoU *float64 `json:"mIoU"`
	}
	if err := json.Unmarshal(raw, &m); err != nil || m.MIoU == nil {
		return fmt.Errorf("%s is empty or invalid (%d bytes)", path, len(raw))
	}
	return nil
}

// readMeasured reads the run's measurements; a missing, empty or invalid file is an error.
func readMeasured(dir string) (Measured, error) {
	var m Measured
	raw, err := os.ReadFile(filepath.Join(dir, measureFile))
	if err != nil {
		return m, err
	}
	if err := json.Unmarshal(raw, &m); err != nil || m.Images == 0 {
		return m, fmt.Errorf("%s is empty or invalid (%d bytes)", filepath.Join(dir, measureFile), len(raw))
	}
	return m, nil
}

// measureOnce writes the run's evaluation measurements unless they are there, whole.
func measureOnce(dir string) error {
	if _, err := readMeasured(dir); err == nil {
		return nil
	}
	m, err := MeasureRun(dir)
	if err != nil {
		return err
	}
	return atomicfile.WriteJSON(filepath.Join(dir, measureFile), m)
}

const measureFile = "sweep_eval.json"

// Measured is a finished run's cost at the evaluation size, for the sweep.
type Measured struct {
	MIoU        float64  `json:"miou"`          // the final mIoU (metrics.json)
	GMACs       float64  `json:"gmacs"`         // conv GMACs per image at its test size, mean over the measured images
	ImagesPerS  float64  `json:"images_per_s"`  // whole-image inference on the measured images
	Images      int      `json:"images"`        // how many were measured
	BranchSizes [][2]int `json:"branch_sizes"`  // the branches' sizes at the first measured image's test size
	TestSize    [2]int   `json:"test_size"`     // that image's size after the test rescale
	Seconds     float64  `json:"train_seconds"` //
}

// measuredImages bounds the cost of measuring a run (its first validation images).
const measuredImages = 20

// MeasureRun loads a finished run's last checkpoint and measures, on its first validation
// images at the test scale, the conv GMACs per image and the inference speed.
func MeasureRun(dir string) (Measured, error) {
	var m Measured
	var metrics struct {
		MIoU float64 `json:"mIoU"`
	}
	raw, err := os.ReadFile(filepath.Join(dir, "metrics.json"))
	if err != nil {
		return m, fmt.Errorf("%s: not finished (%w)", dir, err)
	}
	if err := json.Unmarshal(raw, &metrics); err != nil {
		return m, fmt.Errorf("%s: %w", filepath.Join(dir, "metrics.json"), err)
	}
	m.MIoU = metrics.MIoU
	path, err := checkpoint.Latest(dir)
	if err != nil {
		return m, err
	}
	ck, err := checkpoint.LoadCheckpoint(path)
	if err != nil {
		return m, err
	}
	cfg := ck.State.Config
	_, val, err := segmentation.OpenData(cfg)
	if err != nil {
		return m, err
	}
	model, net, err := checkpoint.LoadModel(ck, len(ck.State.Classes))
	if err != nil {
		return m, err
	}
	inf := infer.ForConfig(cfg)
	inf.Slide = false
	n := min(val.Len(), measuredImages)
	var macs float64
	var busy time.Duration
	for i := 0; i < n; i++ {
		s, err := val.Load(i)
		if err != nil {
			return m, err
		}
		ex := inf.Aug.Test(s.Image)
		start := time.Now()
		if _, err := inf.Predict(net, s.Image); err != nil {
			return m, err
		}
		busy += time.Since(start)
		macs += float64(model.MACs(net.Params, ex.H, ex.W))
		if i == 0 {
			sizes := model.LevelSizes(net.Params, ex.H, ex.W)
			m.BranchSizes, m.TestSize = [][2]int{sizes[2], sizes[3], sizes[4], sizes[5]}, [2]int{ex.H, ex.W}
		}
	}
	if n == 0 {
		return m, fmt.Errorf("%s: no validation images to measure on", dir)
	}
	m.Images, m.GMACs, m.ImagesPerS = n, macs/float64(n)/1e9, float64(n)/busy.Seconds()
	return m, nil
}
