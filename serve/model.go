package serve

import (
	"encoding/json"
	"path/filepath"

	"gorgonia.org/tensor"

	"github.com/segkit/segkit/hrnet"
	"github.com/segkit/segkit/nn"
	"github.com/segkit/segkit/segmentation/checkpoint"
	"github.com/segkit/segkit/segmentation/infer"
)

type classInfo struct {
	Class int      `json:"class"`
	Name  string   `json:"name"`
	Color [3]uint8 `json:"color"`
}

type level struct {
	Name string `json:"name"` // hrnet.LevelNames: in, half, 0–3 (branches)
	Size [2]int `json:"size"` // h, w
}

type alpha struct {
	Pool  string     `json:"pool"`
	Alpha [2]float32 `json:"alpha"` // the learned stride, per axis (h, w)
}

// card is GET /v1/model.
type card struct {
	Model      string               `json:"model"` // HRNetV2-<config>
	Config     string               `json:"config"`
	Resize     string               `json:"resize"` // fixed or dynopool
	Checkpoint string               `json:"checkpoint,omitempty"`
	Params     int                  `json:"params"`
	Classes    []classInfo          `json:"classes"`
	Protocol   protocol             `json:"protocol"`
	TestSize   [2]int               `json:"test_size"` // h, w: the network input at the checkpoint's test size
	Levels     []level              `json:"levels"`    // at TestSize
	GMACs      float64              `json:"gmacs"`     // conv multiply-accumulates per image at TestSize, 1e9
	Alphas     []alpha              `json:"alphas,omitempty"`
	Imported   *checkpoint.Imported `json:"imported,omitempty"`
	Serving    serving              `json:"serving"`
}

type protocol struct {
	Mode         string     `json:"mode"` // whole or slide
	Crop         int        `json:"crop,omitempty"`
	Stride       int        `json:"stride,omitempty"`
	Scale        [2]int     `json:"scale"` // long, short: the test rescale
	Flip         bool       `json:"flip"`
	Scales       []float64  `json:"scales"`
	Mean         [3]float32 `json:"mean"`
	Std          [3]float32 `json:"std"`
	Convention   string     `json:"convention"` // segkit or mmseg (imported models' resizes)
	AlignCorners bool       `json:"align_corners"`
}

type serving struct {
	Batch       int     `json:"batch"`
	BatchWaitMS float64 `json:"batch_wait_ms"`
	Queue       int     `json:"queue"`
	TimeoutS    float64 `json:"timeout_s"`
	MaxBody     int64   `json:"max_body"`
	MaxPixels   int     `json:"max_pixels"`
	Opacity     float64 `json:"opacity"`
}

// levels are the model's level sizes for an h×w network input: DynOPool's learned ones, or
// the fixed halvings.
func levels(p *infer.Predictor, h, w int) []level {
	var out []level
	for i, s := range p.Model.LevelSizes(p.Net.Params, h, w) {
		out = append(out, level{hrnet.LevelNames[i], s})
	}
	return out
}

// modelCard describes the model and the protocol it serves with (after the command's flags).
func modelCard(p *infer.Predictor, opt Options) ([]byte, []classInfo, error) {
	inf, cfg := p.Inference, p.State.Config.WithDefaults()
	// The test size as segtrain export's default: the crop rescaled as images are, or the
	// window when sliding.
	h, w := cfg.CropSize()
	if inf.Slide {
		h, w = inf.Crop, inf.Crop
	} else {
		w, h = inf.Aug.TestSize(w, h)
	}
	// MACs need a built graph; this one is the likeliest first request's too.
	if _, err := p.Net.Graph(nn.Inference, tensor.Shape{1, 3, h, w}); err != nil {
		return nil, nil, err
	}
	c := card{Model: "HRNetV2-" + p.Model.Name, Config: p.Model.Name, Resize: string(p.Model.Resize),
		Params: p.Net.Params.Count(), TestSize: [2]int{h, w}, Levels: levels(p, h, w),
		GMACs: float64(p.Model.MACs(p.Net.Params, h, w)) / 1e9, Imported: p.State.Imported}
	if opt.Checkpoint != "" {
		c.Checkpoint = filepath.Base(opt.Checkpoint)
	}
	for i, name := range p.Classes {
		c.Classes = append(c.Classes, classInfo{i, name, p.Palette.RGB(uint8(i))})
	}
	for _, pool := range p.Model.Pools() {
		c.Alphas = append(c.Alphas, alpha{pool.Name, pool.Alpha(p.Net.Params)})
	}
	c.Protocol = protocol{Mode: "whole", Scale: inf.Aug.Scale, Flip: inf.Flip, Scales: inf.Scales,
		Mean: inf.Aug.Mean, Std: inf.Aug.Std, Convention: "segkit", AlignCorners: inf.AlignCorners}
	if inf.Slide {
		c.Protocol.Mode, c.Protocol.Crop, c.Protocol.Stride = "slide", inf.Crop, inf.Stride
	}
	if len(c.Protocol.Scales) == 0 {
		c.Protocol.Scales = []float64{1}
	}
	if inf.MMSeg {
		c.Protocol.Convention = "mmseg"
	}
	c.Serving = serving{Batch: opt.Batch, BatchWaitMS: ms(opt.BatchWait), Queue: opt.Queue, TimeoutS: opt.Timeout.Seconds(),
		MaxBody: opt.MaxBody, MaxPixels: opt.MaxPixels, Opacity: opt.Opacity}
	b, err := json.MarshalIndent(c, "", "  ")
	return append(b, '\n'), c.Classes, err
}
