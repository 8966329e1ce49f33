// Package checkpoint is segkit's checkpoint format (safetensors with the run's state as
// metadata): saving, loading and restoring it, and the models that eval and segpredict open,
// segkit's or converted from PyTorch as they are read.
package checkpoint

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"

	"github.com/nlpodyssey/safetensors"

	"github.com/segkit/segkit/dataset"
	"github.com/segkit/segkit/hrnet"
	"github.com/segkit/segkit/internal/atomicfile"
	"github.com/segkit/segkit/nn"
	"github.com/segkit/segkit/segmentation"
	"github.com/segkit/segkit/weights"
)

// CheckpointFormat marks our checkpoints (safetensors metadata "format"), with its version.
const (
	CheckpointFormat  = "segkit-checkpoint"
	CheckpointVersion = "1"
)

// State is what a checkpoint records besides the tensors: enough to continue the run exactly.
type State struct {
	Iter     int                 `json:"iter"`      // iterations done
	Epoch    int                 `json:"epoch"`     // loader position of the next batch
	Batch    int                 `json:"batch"`     //
	BestMIoU float64             `json:"best_miou"` // best validation mIoU so far (-1: none)
	BestIter int                 `json:"best_iter"`
	Config   segmentation.Config `json:"config"`
	Classes  []string            `json:"classes"` // the class names, label order
	// The kernels' parallel split (kernels.Workers) decides the order of their sums: a resume with
	// another count continues correctly, but not bit for bit as the run would have. 0: not recorded.
	KernelWorkers int `json:"kernel_workers,omitempty"`
	GOMAXPROCS    int `json:"gomaxprocs,omitempty"` // Workers' default
	// Ranks is the number of processes of the data-parallel run that wrote it (0: one); a resume
	// with another number continues the same training, not bit for bit.
	Ranks int `json:"ranks,omitempty"`
	// Palette colours the classes in segpredict's outputs (nil: VOC's palette).
	Palette [][3]uint8 `json:"palette,omitempty"`
	// Imported says where a model converted from PyTorch came from (nil: trained by segkit).
	Imported *Imported `json:"imported,omitempty"`
}

// Imported is the provenance of an imported model (segtrain import).
type Imported struct {
	From      string `json:"from"`      // the file converted
	Family    string `json:"family"`    // importer.Family: mmseg, official
	Container string `json:"container"` // the file's container (weights.File.Container)
	ABN       bool   `json:"abn"`       // BN weights folded from InPlaceABN
	Report    string `json:"report"`    // what was mapped, dropped, synthesized, folded
}

func f32bytes(v []float32) []byte {
	b := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(x))
	}
	return b
}

// SaveCheckpoint writes every parameter and buffer ("param/<name>"), the SGD momentum
// ("velocity/<name>") and the state (metadata) to path atomically (package atomicfile; mode
// 0666 less the umask).
func SaveCheckpoint(path string, params *nn.Params, st State) error {
	views := map[string]safetensors.TensorView{}
	add := func(name string, shape []int, data []float32) error {
		s := make([]uint64, len(shape))
		for i, d := range shape {
			s[i] = uint64(d)
		}
		v, err := safetensors.NewTensorView(safetensors.F32, s, f32bytes(data))
		views[name] = v
		return err
	}
	for _, p := range params.All() {
		if err := add("param/"+p.Name, p.Value.Shape(), p.Data()); err != nil {
			return err
		}
		if p.Velocity != nil {
			if err := add("velocity/"+p.Name, p.Value.Shape(), p.Velocity); err != nil {
				return err
			}
		}
	}
	state, err := json.Marshal(st)
	if err != nil {
		return err
	}
	meta := map[string]string{"format": CheckpointFormat, "version": CheckpointVersion, "state": string(state)}
	err = atomicfile.Write(path, 0o666, func(w io.Writer) error {
		return safetensors.SerializeToWriter(views, meta, w)
	})
	if err != nil {
		return fmt.Errorf("writing checkpoint %s: %w", path, err)
	}
	return nil
}

// Checkpoint is a checkpoint read back.
type Checkpoint struct {
	State    State
	Params   map[string][]float32
	Shapes   map[string][]int
	Velocity map[string][]float32
}

// LoadCheckpoint reads a checkpoint; a truncated or foreign file is an error naming it.
func LoadCheckpoint(path string) (*Checkpoint, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	ck, err := decodeCheckpoint(raw)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return ck, nil
}

// A checkpoint's header (tensor list and metadata) and its state are far smaller than these
// (HRNet-W48 with momentum: 0.5 MB and a few kB): larger ones are not segkit's and are refused
// before they are parsed.
const (
	maxHeader = 16 << 20
	maxState  = 1 << 20
)

func decodeCheckpoint(raw []byte) (ck *Checkpoint, err error) {
	defer func() {
		if r := recover(); r != nil {
			ck, err = nil, fmt.Errorf("not a readable checkpoint (%v)", r)
		}
	}()
	if len(raw) < 8 || binary.LittleEndian.Uint64(raw) > uint64(len(raw)-8) {
		return nil, fmt.Errorf("not a checkpoint: truncated or not safetensors (%d bytes)", len(raw))
	}
	if n := binary.LittleEndian.Uint64(raw); n > maxHeader {
		return nil, fmt.Errorf("a header of %d bytes: more than a segkit checkpoint has (%d at most)", n, maxHeader)
	}
	_, meta, err := safetensors.ReadMetadata(raw)
	if err != nil {
		return nil, fmt.Errorf("not a checkpoint: %w", err)
	}
	md := meta.Metadata()
	if md["format"] != CheckpointFormat {
		return nil, fmt.Errorf("not a segkit checkpoint (safetensors without format %q; weights only? use --pretrained)", CheckpointFormat)
	}
	if md["version"] != CheckpointVersion {
		return nil, fmt.Errorf("checkpoint format version %q, this build reads %q", md["version"], CheckpointVersion)
	}
	if n := len(md["state"]); n > maxState {
		return nil, fmt.Errorf("a checkpoint state of %d bytes: more than a segkit checkpoint has (%d at most)", n, maxState)
	}
	ck = &Checkpoint{Params: map[string][]float32{}, Shapes: map[string][]int{}, Velocity: map[string][]float32{}}
	if err := json.Unmarshal([]byte(md["state"]), &ck.State); err != nil {
		return nil, fmt.Errorf("checkpoint state: %w", err)
	}
	st, err := safetensors.Deserialize(raw)
	if err != nil {
		return nil, fmt.Errorf("not a checkpoint: %w", err)
	}
	for _, nt := range st.Tensors() {
		tv := nt.TensorView
		if tv.DType() != safetensors.F32 {
			return nil, fmt.Errorf("tensor %s is %v, not F32", weights.Quote(nt.Name), tv.DType())
		}
		b := tv.Data()
		v := make([]float32, len(b)/4)
		for i := range v {
			v[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
		}
		shape := make([]int, len(tv.Shape()))
		for i, d := range tv.Shape() {
			shape[i] = int(d)
		}
		switch name := nt.Name; {
		case len(name) > 6 && name[:6] == "param/":
			ck.Params[name[6:]], ck.Shapes[name[6:]] = v, shape
		case len(name) > 9 && name[:9] == "velocity/":
			ck.Velocity[name[9:]] = v
		}
	}
	return ck, nil
}

// validate checks the settings, class names and palette a checkpoint carries with the limits
// their flags have (modelErrors, dataset.CheckClassNames): a checkpoint edited by hand, or
// forged, is refused with the first setting out of bounds, before its model is built
// (LoadModel) or its import saved.
func (st State) validate() error {
	if errs := st.Config.ModelErrors(); len(errs) > 0 {
		return fmt.Errorf("a setting no segkit run has: %w", errs[0])
	}
	if st.Classes != nil {
		if err := dataset.CheckClassNames(st.Classes); err != nil {
			return fmt.Errorf("its classes: %w", err)
		}
	}
	if len(st.Palette) > dataset.MaxClasses+1 { // a colour for every byte label, void's too
		return fmt.Errorf("a palette of %d colours (at most %d)", len(st.Palette), dataset.MaxClasses+1)
	}
	return nil
}

// Restore copies the checkpoint's values into params, which must hold the same tensors (build a
// graph first so they exist).
func (ck *Checkpoint) Restore(params *nn.Params) error {
	for _, p := range params.All() {
		v, ok := ck.Params[p.Name]
		if !ok {
			return fmt.Errorf("checkpoint has no %s: it is of another model", p.Name)
		}
		if !slices.Equal(ck.Shapes[p.Name], p.Value.Shape()) {
			return fmt.Errorf("checkpoint's %s has shape %v, the model's %v", p.Name, ck.Shapes[p.Name], []int(p.Value.Shape()))
		}
		copy(p.Data(), v)
		p.Velocity = nil
		if vel, ok := ck.Velocity[p.Name]; ok {
			p.Velocity = append([]float32(nil), vel...)
		}
	}
	if len(ck.Params) != len(params.All()) {
		return fmt.Errorf("checkpoint has %d tensors, the model %d: it is of another model", len(ck.Params), len(params.All()))
	}
	return nil
}

// LoadModel rebuilds a checkpoint's model with its weights, for classes classes.
func LoadModel(ck *Checkpoint, classes int) (*hrnet.Model, *nn.Net, error) {
	if err := ck.State.validate(); err != nil {
		return nil, nil, err
	}
	if classes < 1 || classes > dataset.MaxClasses {
		return nil, nil, fmt.Errorf("a model of %d classes: 1–%d", classes, dataset.MaxClasses)
	}
	m, net, err := segmentation.NewModel(ck.State.Config, classes)
	if err != nil {
		return nil, nil, err
	}
	if err := ck.Restore(net.Params); err != nil {
		return nil, nil, err
	}
	return m, net, nil
}

// ErrNoCheckpoint is a run directory's lack of checkpoints.
var ErrNoCheckpoint = errors.New("no checkpoint (ckpt_iter_*.safetensors) to resume from")

// Latest returns the checkpoint to resume from: path itself, or the newest in a run dir.
func Latest(path string) (string, error) {
	st, err := os.Stat(path)
	if err != nil {
		return "", err
	}
	if !st.IsDir() {
		return path, nil
	}
	files, _ := filepath.Glob(filepath.Join(path, "ckpt_iter_*.safetensors"))
	if len(files) == 0 {
		return "", fmt.Errorf("%s: %w", path, ErrNoCheckpoint)
	}
	slices.Sort(files) // zero-padded iteration numbers
	return files[len(files)-1], nil
}
