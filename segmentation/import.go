package segmentation

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"os"

	"github.com/segkit/segkit/hrnet"
	"github.com/segkit/segkit/importer"
	"github.com/segkit/segkit/nn"
	"github.com/segkit/segkit/voc"
	"github.com/segkit/segkit/weights"
)

// ImportOptions are what a PyTorch file cannot say about its model.
type ImportOptions struct {
	importer.Options
	Classes []string // class names, for files without them (official HRNet files); nil: the file's
}

// OpenCheckpoint reads the model that eval and segpredict use: a segkit checkpoint, or a trained
// model from PyTorch (mmseg, official HRNet: .pth, .pt or .safetensors), imported on the fly.
func OpenCheckpoint(path string, opt ImportOptions) (*Checkpoint, error) {
	ours, err := isCheckpoint(path)
	if err != nil {
		return nil, err
	}
	if ours {
		return LoadCheckpoint(path)
	}
	im, err := ImportModel(path, opt)
	if err != nil {
		return nil, err
	}
	return im.Checkpoint(), nil
}

// isCheckpoint reports whether path is a segkit checkpoint: safetensors whose metadata names
// our format (anything else is for the importer).
func isCheckpoint(path string) (bool, error) {
	f, err := os.Open(path)
	if err != nil {
		return false, err
	}
	defer f.Close()
	var n uint64
	if err := binary.Read(f, binary.LittleEndian, &n); err != nil || n > 100<<20 {
		return false, nil
	}
	header := make([]byte, n)
	if _, err := io.ReadFull(f, header); err != nil {
		return false, nil
	}
	return bytes.Contains(header, []byte(`"format":"`+CheckpointFormat+`"`)), nil
}

// Import is a PyTorch model converted: the net with its weights, the state a checkpoint of it
// records, and what the importer made of the file.
type Import struct {
	Net   *nn.Net
	State State
	Model *importer.Model
}

// ImportModel converts a trained PyTorch model for segkit.
func ImportModel(path string, opt ImportOptions) (*Import, error) {
	f, err := weights.Read(path)
	if err != nil {
		return nil, err
	}
	m, err := importer.Convert(f, opt.Options)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if m.Family == importer.Backbone {
		return nil, fmt.Errorf("%s: an ImageNet HRNet-%s backbone without a segmentation head: fine-tune from it with segtrain --pretrained", path, m.Config)
	}
	names := m.Names
	switch {
	case opt.Classes != nil && len(opt.Classes) != m.Classes:
		return nil, fmt.Errorf("%s: %d class names given for a model with %d classes", path, len(opt.Classes), m.Classes)
	case opt.Classes != nil:
		names = opt.Classes
	case names == nil && m.Classes == len(voc.ClassNames):
		names = voc.ClassNames
	case names == nil:
		names = make([]string, m.Classes)
		for i := range names {
			names[i] = fmt.Sprintf("class %d", i)
		}
	}
	cfg := DefaultConfig()
	cfg.Model, cfg.Resize, cfg.Crop = m.Config, string(hrnet.Fixed), testCrop(m.Classes)
	cfg.AlignCorners, cfg.Convention = m.AlignCorners, m.Convention
	_, net, err := newModel(cfg, m.Classes)
	if err != nil {
		return nil, err
	}
	if rep := weights.Apply(net.Params, m.Tensors, nil); !rep.OK() || len(rep.Unexpected) > 0 {
		return nil, fmt.Errorf("%s: the %s checkpoint does not fit HRNetV2-%s: %v", path, m.Family, m.Config, rep)
	}
	st := State{BestMIoU: -1, Config: cfg, Classes: names, Palette: m.Palette,
		Imported: &Imported{From: path, Family: string(m.Family), Container: m.Container, ABN: m.ABN, Report: m.Report.String()}}
	return &Import{Net: net, State: st, Model: m}, nil
}

// Checkpoint returns the imported model as a checkpoint read back.
func (im *Import) Checkpoint() *Checkpoint {
	ck := &Checkpoint{State: im.State, Params: map[string][]float32{}, Shapes: map[string][]int{}, Velocity: map[string][]float32{}}
	for _, p := range im.Net.Params.All() {
		ck.Params[p.Name], ck.Shapes[p.Name] = p.Data(), []int(p.Value.Shape())
	}
	return ck
}

// Save writes the imported model as a segkit checkpoint.
func (im *Import) Save(path string) error { return SaveCheckpoint(path, im.Net.Params, im.State) }

// testCrop is the crop whose test scale (4·crop × crop, voc.DefaultAugment) is mmseg's for the
// dataset a class count suggests: Cityscapes (19) is tested at 2048×1024, VOC, ADE20K and the
// rest at 2048×512.
func testCrop(classes int) int {
	if classes == 19 {
		return 1024
	}
	return 512
}
