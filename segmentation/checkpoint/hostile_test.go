package checkpoint_test

import (
	"archive/zip"
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/segkit/segkit/internal/memcheck"
	"github.com/segkit/segkit/segmentation"
	"github.com/segkit/segkit/segmentation/checkpoint"
	"github.com/segkit/segkit/segmentation/infer"
	"github.com/segkit/segkit/voc"
)

// Forged models are refused with one short error naming the file, in bounded memory, by each
// command's way in: segtrain import (checkpoint.ImportModel), and eval and segpredict --checkpoint
// (checkpoint.OpenCheckpoint, then the model built and an image segmented). Each case runs in a child
// process whose peak resident memory is measured (internal/memcheck).
const (
	hostilePeak = 200 << 20
	hostileTime = 5 * time.Second
)

// entries are the ways a file gets in: each returns the error that refused it.
var entries = []struct {
	name string
	open func(path string) error
}{
	{"import", func(path string) error {
		_, err := checkpoint.ImportModel(path, checkpoint.ImportOptions{})
		return err
	}},
	{"predict", func(path string) error {
		p, err := infer.NewPredictor(path, checkpoint.ImportOptions{})
		if err != nil {
			return err
		}
		_, err = p.Segment(voc.RGB{W: 8, H: 6, Pix: make([]uint8, 8*6*3)})
		return err
	}},
}

// torchZip writes a torch.save zip of a state dict whose tensors have the given shapes and no
// elements (views of one storage): shapes are all a forged file needs to reach the model.
func torchZip(t *testing.T, shapes map[string][]int64) []byte {
	p := []byte{0x80, 2, '}', '('}
	str := func(s string) {
		p = append(p, 'X')
		p = binary.LittleEndian.AppendUint32(p, uint32(len(s)))
		p = append(p, s...)
	}
	tuple := func(vs []int64) {
		p = append(p, '(')
		for _, v := range vs {
			p = append(p, 0x8a, 8)
			p = binary.LittleEndian.AppendUint64(p, uint64(v))
		}
		p = append(p, 't')
	}
	for name, shape := range shapes {
		str(name)
		p = append(p, "ctorch._utils\n_rebuild_tensor_v2\n(("...)
		str("storage")
		p = append(p, "ctorch\nFloatStorage\n"...)
		str("0")
		str("cpu")
		p = append(p, 'K', 1, 't', 'Q', 'K', 0)
		tuple(shape)
		tuple(make([]int64, len(shape)))
		p = append(p, 0x89)
		p = append(p, "ccollections\nOrderedDict\n)RtR"...)
	}
	p = append(p, "u."...)
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, r := range []struct {
		name string
		data []byte
	}{{"archive/data.pkl", p}, {"archive/data/0", make([]byte, 4)}} {
		w, err := zw.CreateHeader(&zip.FileHeader{Name: r.name, Method: zip.Store})
		if err != nil {
			t.Fatal(err)
		}
		w.Write(r.data)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// officialShapes are an official HRNetV2-W18-small-v1 state dict's conv1 shapes and head, with
// no elements: enough for the importer to read the layout and the class count.
func officialShapes(classes int64) map[string][]int64 {
	s := map[string][]int64{"layer1.0.conv1.weight": {32, 0, 1, 1},
		"last_layer.0.weight": {240, 240, 0, 1}, "last_layer.3.weight": {classes, 0, 1, 1}}
	for k, chans := range [][]int64{{16, 32}, {16, 32, 64}, {16, 32, 64, 128}} {
		for br, c := range chans {
			for blk := range 2 {
				s[fmt.Sprintf("stage%d.0.branches.%d.%d.conv1.weight", k+2, br, blk)] = []int64{c, 0, 3, 3}
			}
		}
	}
	return s
}

// A .pth whose classifier has 2^31 (or 10^8) outputs and no elements passes every storage
// check; the class count is refused before the model or its class names are made.
func TestHostileClassifierShape(t *testing.T) {
	for _, classes := range []int64{1 << 31, 100_000_000} {
		for _, e := range entries {
			name := fmt.Sprintf("classes-%d.pth", classes)
			t.Run(e.name+"/"+name, func(t *testing.T) {
				want := fmt.Sprintf("of %d classes: at most 255", classes)
				memcheck.Refused(t, name, want, hostilePeak, hostileTime, func(path string) error {
					return os.WriteFile(path, torchZip(t, officialShapes(classes)), 0o644)
				}, e.open)
			})
		}
	}
}

// A tensor name with a branch index of 10^8, or of 20 digits, is refused by the layouts'
// bounds, in a short message.
func TestHostileTensorIndex(t *testing.T) {
	for i, index := range []string{"100000000", "12345678901234567890"} {
		for _, e := range entries {
			name := fmt.Sprintf("index-%d.pth", i)
			t.Run(e.name+"/"+name, func(t *testing.T) {
				memcheck.Refused(t, name, "stage 2 branch "+index+", beyond every HRNet layout", hostilePeak, hostileTime, func(path string) error {
					shapes := officialShapes(21)
					shapes["stage2.0.branches."+index+".0.conv1.weight"] = []int64{16, 0, 3, 3}
					return os.WriteFile(path, torchZip(t, shapes), 0o644)
				}, e.open)
			})
		}
	}
}

// segkit's own checkpoints carry their settings: one edited beyond what the flags allow (a
// 60000² test scale, a 60000-pixel crop, millions of class names, too many or too long names)
// is refused before the model is built or an image resized.
func TestHostileCheckpointState(t *testing.T) {
	names := func(n, size int) []string {
		out := make([]string, n)
		for i := range out {
			out[i] = strings.Repeat("c", size)
		}
		return out
	}
	for _, c := range []struct {
		name, want string
		edit       func(*checkpoint.State)
	}{
		{"test-scale.safetensors", "--test-scale 60000x60000: at most 4096", func(s *checkpoint.State) { s.Config.TestScale = [2]int{60000, 60000} }},
		{"crop.safetensors", "--crop 60000: at most 4096", func(s *checkpoint.State) { s.Config.Crop = 60000 }},
		{"names-3M.safetensors", "more than a segkit checkpoint has", func(s *checkpoint.State) { s.Classes = names(3_000_000, 1) }},
		{"names-300K.safetensors", "a checkpoint state of 1200", func(s *checkpoint.State) { s.Classes = names(300_000, 1) }},
		{"names-300.safetensors", "300 class names (want 1–255)", func(s *checkpoint.State) { s.Classes = names(300, 1) }},
		{"name-long.safetensors", "class name 0 is 100000 bytes long", func(s *checkpoint.State) { s.Classes = []string{strings.Repeat("c", 100_000), "b"} }},
		{"palette.safetensors", "a palette of 1000 colours", func(s *checkpoint.State) { s.Palette = make([][3]uint8, 1000) }},
	} {
		t.Run(c.name, func(t *testing.T) {
			memcheck.Refused(t, c.name, c.want, hostilePeak, hostileTime, func(path string) error {
				cfg := segmentation.DefaultConfig()
				cfg.Model, cfg.Crop = "w18_small_v1", 64
				_, net, err := segmentation.NewModel(cfg, 2)
				if err != nil {
					return err
				}
				st := checkpoint.State{Config: cfg, Classes: []string{"a", "b"}}
				c.edit(&st)
				return checkpoint.SaveCheckpoint(path, net.Params, st)
			}, entries[1].open)
		})
	}
}
