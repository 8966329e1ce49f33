package checkpoint

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"os"

	"github.com/segkit/segkit/dataset"
	"github.com/segkit/segkit/hrnet"
	"github.com/segkit/segkit/importer"
	"github.com/segkit/segkit/nn"
	"github.com/segkit/segkit/segmentation"
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
// our format (anything else is for the importer). The header is scanned in chunks, not read
// whole: a forged one of any size is then LoadCheckpoint's to refuse, with a clear message.
func isCheckpoint(path string) (bool, error) {
	f, err := os.Open(path)
	if err != nil {
		return false, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return false, err
	}
	var n uint64
	if err := binary.Read(f, binary.LittleEndian, &n); err != nil || n > uint64(st.Size()-8) {
		return false, nil
	}
	mark := []byte(`"format":"` + CheckpointFormat + `"`)
	r := bufio.NewReaderSize(io.LimitReader(f, int64(n)), 64<<10)
	window := make([]byte, 0, 64<<10+len(mark))
	for {
		chunk := window[len(window):cap(window)]
		k, err := r.Read(chunk[:min(len(chunk), 64<<10)])
		window = window[:len(window)+k]
		if bytes.Contains(window, mark) {
			return true, nil
		}
		if err != nil {
			return false, nil
		}
		// keep the tail that a mark split between chunks starts in
		keep := min(len(window), len(mark)-1)
		window = append(window[:0], window[len(window)-keep:]...)
	}
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
	cfg, names, palette, err := importSettings(m, opt)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	st := State{BestMIoU: -1, Config: cfg, Classes: names, Palette: palette,
		Imported: &Imported{From: path, Family: string(m.Family), Container: m.Container, ABN: m.ABN, Report: m.Report.String()}}
	if err := st.validate(); err != nil { // the file's class names, say
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	_, net, err := segmentation.NewModel(cfg, m.Classes)
	if err != nil {
		return nil, err
	}
	if rep := weights.Apply(net.Params, m.Tensors, nil); !rep.OK() || len(rep.Unexpected) > 0 {
		return nil, fmt.Errorf("%s: the %s checkpoint does not fit HRNetV2-%s: %v", path, m.Family, m.Config, rep)
	}
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

// importSettings are an imported model's settings, class names and colours: the test protocol
// (mmseg's recipe) and default names and colours of the dataset its class count suggests; names
// from opt or the file come first.
func importSettings(m *importer.Model, opt ImportOptions) (segmentation.Config, []string, [][3]uint8, error) {
	cfg, info := segmentation.DefaultConfig(), dataset.Info{}
	if name, ok := datasetByClasses[m.Classes]; ok {
		r, err := segmentation.RecipeFor(name)
		if err != nil {
			return segmentation.Config{}, nil, nil, err
		}
		cfg = r.Config
		info, _ = dataset.Lookup(name)
	}
	names, palette := m.Names, m.Palette
	switch {
	case opt.Classes != nil && len(opt.Classes) != m.Classes:
		return segmentation.Config{}, nil, nil, fmt.Errorf("%d class names given for a model with %d classes", len(opt.Classes), m.Classes)
	case opt.Classes != nil:
		names = opt.Classes
	case names == nil && info.Classes != nil:
		names = info.Classes
	case names == nil:
		names = make([]string, m.Classes)
		for i := range names {
			names[i] = fmt.Sprintf("class %d", i)
		}
	}
	if palette == nil && info.Classes != nil {
		palette = info.Colors()
	}
	cfg.Model, cfg.Resize = m.Config, string(hrnet.Fixed)
	cfg.AlignCorners, cfg.Convention = m.AlignCorners, m.Convention
	return cfg, names, palette, nil
}

// datasetByClasses are the datasets whose models a class count suggests (mmseg's and the
// official zoo: VOC, Cityscapes, ADE20K, Pascal Context 60 and 59; CamVid).
var datasetByClasses = map[int]string{21: dataset.VOC, 19: dataset.Cityscapes, 150: dataset.ADE20K,
	60: dataset.PascalContext, 59: dataset.PascalContext59, 11: dataset.CamVid}
