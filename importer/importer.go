// Package importer turns HRNet checkpoints trained with PyTorch into segkit's model: mmseg's
// FCN-HRNet (0.x and 1.x containers), the official HRNet-Semantic-Segmentation models (BN or
// InPlaceABN) and ImageNet backbones (official classification, mmcv msra/*, timm). It detects
// the family from the keys, infers the HRNet layout and the class count from tensor shapes,
// renames the tensors to segkit's (the official state_dict names), and records the forward
// conventions that change outputs (align_corners, mmseg's two-step resizes), so that the model
// computes what PyTorch computes.
package importer

import (
	"fmt"
	"math"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/segkit/segkit/dataset"
	"github.com/segkit/segkit/hrnet"
	"github.com/segkit/segkit/weights"
)

// Family is the kind of checkpoint.
type Family string

const (
	MMSeg    Family = "mmseg"    // mmsegmentation EncoderDecoder with HRNet + FCNHead
	Official Family = "official" // HRNet-Semantic-Segmentation (seg_hrnet.py)
	Backbone Family = "imagenet" // an ImageNet classification HRNet: weights to fine-tune from only
)

// Convention names how a model resizes: "" is segkit's (one-step resizes, align_corners=False);
// ConventionMMSeg is mmseg's two-step fuse up-sampling and logits path (1/4 → network input →
// image) and its unpadded slide windows.
const ConventionMMSeg = "mmseg"

// BN chooses how an official file's batch norms are read: BNDetect (InPlaceABN when the file
// has no num_batches_tracked at all, as ABN modules register none), BNPlain or BNInPlaceABN
// (effective scale |γ| + 1e-5).
type BN string

const (
	BNDetect     BN = ""
	BNPlain      BN = "bn"
	BNInPlaceABN BN = "abn"
)

// Options are what the file cannot say.
type Options struct {
	BN BN
	// AlignCorners is official files' align_corners (their configs differ: Cityscapes, LIP and
	// Pascal Context False, ADE20K and COCO-Stuff True); nil: False. mmseg models always use False.
	AlignCorners *bool
}

// Model is an imported model: segkit's tensors and what the model needs to reproduce PyTorch.
type Model struct {
	Family    Family
	Container string // the file's container (weights.File.Container)
	Config    string // HRNet layout, e.g. "w48"
	Classes   int    // output classes (0 for a backbone)
	Names     []string
	Palette   [][3]uint8
	// Conventions of the forward (see hrnet.Model and ConventionMMSeg).
	Convention   string
	AlignCorners bool
	ABN          bool // BN scales folded from InPlaceABN's |γ| + eps
	Tensors      map[string]weights.Tensor
	Report       Report
}

// Report says what the import did with the file's tensors.
type Report struct {
	Mapped      int      // tensors taken (renamed where the family's names differ)
	Dropped     []string // left out: classification heads, auxiliary heads, loss weights, counters
	Synthesized []string // made up: mmseg's head conv has no bias (a zero bias is the same function)
	Folded      []string // BN weights rewritten as |γ| + eps (InPlaceABN)
}

func (r Report) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "mapped %d tensors", r.Mapped)
	for _, part := range []struct {
		what  string
		names []string
	}{{"dropped", r.Dropped}, {"synthesized", r.Synthesized}, {"folded from InPlaceABN", r.Folded}} {
		if len(part.names) > 0 {
			fmt.Fprintf(&b, "; %d %s: %s", len(part.names), part.what, summarize(part.names))
		}
	}
	return b.String()
}

// summarize lists names, collapsing those that share a first component past a few.
func summarize(names []string) string {
	if len(names) <= 6 {
		quoted := make([]string, len(names))
		for i, n := range names {
			quoted[i] = weights.Quote(n)
		}
		return strings.Join(quoted, ", ")
	}
	groups := map[string]int{}
	var order []string
	for _, n := range names {
		g, _, _ := strings.Cut(n, ".")
		if groups[g] == 0 {
			order = append(order, g)
		}
		groups[g]++
	}
	const most = 8 // groups listed: a forged file can have any number
	parts := make([]string, 0, most+1)
	for _, g := range order[:min(len(order), most)] {
		parts = append(parts, fmt.Sprintf("%s.* (%d)", weights.Quote(g), groups[g]))
	}
	if len(order) > most {
		parts = append(parts, fmt.Sprintf("and %d more", len(order)-most))
	}
	return strings.Join(parts, ", ")
}

// abnEps is InPlaceABN's eps, added to |γ| (inplace_abn_cpu.cpp).
const abnEps = 1e-5

// Convert maps a file's tensors to segkit's model. Every refusal says what the file is and what
// is supported.
func Convert(f *weights.File, opt Options) (*Model, error) {
	names := strip(f.Tensors)
	family, err := detect(names)
	if err != nil {
		return nil, err
	}
	m := &Model{Family: family, Container: f.Container, Names: f.Classes, Palette: f.Palette, Tensors: map[string]weights.Tensor{}}
	switch family {
	case MMSeg:
		if opt.BN != BNDetect || opt.AlignCorners != nil {
			return nil, fmt.Errorf("an mmseg checkpoint has plain BN and align_corners=False: --bn and --align-corners are for official HRNet files")
		}
		m.Convention = ConventionMMSeg
		err = m.mapMMSeg(names)
	case Official:
		m.AlignCorners = opt.AlignCorners != nil && *opt.AlignCorners
		err = m.mapOfficial(names, f.Integer, opt.BN)
	case Backbone:
		err = m.mapBackbone(names)
	}
	if err != nil {
		return nil, err
	}
	if m.Config, err = inferConfig(m.Tensors); err != nil {
		return nil, err
	}
	if family != Backbone {
		w, ok := m.Tensors["last_layer.3.weight"]
		if !ok || len(w.Shape) != 4 {
			return nil, fmt.Errorf("%s checkpoint without a classifier (last_layer.3.weight)", family)
		}
		// The model is built from these shapes: each must be the layout's before anything is
		// allocated (a zero-element tensor passes every storage check whatever its shape).
		if err := m.checkHead(); err != nil {
			return nil, err
		}
		m.Classes = w.Shape[0]
		if m.Names != nil && len(m.Names) != m.Classes {
			return nil, fmt.Errorf("the file names %d classes but its classifier has %d outputs", len(m.Names), m.Classes)
		}
		if m.Palette != nil && len(m.Palette) != m.Classes {
			m.Palette = nil // a palette that does not fit is not worth refusing the model for
		}
	}
	for _, l := range [][]string{m.Report.Dropped, m.Report.Synthesized, m.Report.Folded} {
		slices.Sort(l)
	}
	return m, nil
}

// strip removes the prefixes wrappers add: DataParallel's "module." and the official
// FullModel's "model.".
func strip(tensors map[string]weights.Tensor) map[string]weights.Tensor {
	out := make(map[string]weights.Tensor, len(tensors))
	for name, t := range tensors {
		for _, p := range []string{"module.", "model."} {
			name = strings.TrimPrefix(name, p)
		}
		out[name] = t
	}
	return out
}

var ocrKeys = []string{"cls_head.", "ocr_gather_head.", "ocr_distri_head.", "conv3x3_ocr.", "aux_head."}

// detect names the family from the keys, or says why the file is not one we can read.
func detect(t map[string]weights.Tensor) (Family, error) {
	has := func(name string) bool { _, ok := t[name]; return ok }
	hasPrefix := func(p string) bool {
		for name := range t {
			if strings.HasPrefix(name, p) {
				return true
			}
		}
		return false
	}
	switch {
	case hasPrefix("param/"):
		return "", fmt.Errorf("a segkit checkpoint: use it directly (no import needed)")
	case has("backbone.conv1.weight"):
		switch {
		case hasPrefix("decode_head.0.") || hasPrefix("decode_head.1."):
			return "", fmt.Errorf("an mmseg cascade model (OCRNet: decode_head.0/1): only FCN-HRNet (fcn_hr18s/hr18/hr48 configs) is supported")
		case hasPrefix("decode_head.convs.1."):
			return "", fmt.Errorf("an mmseg FCN head with num_convs > 1: only the HRNet configs' single 1×1 conv (num_convs=1) is supported")
		case hasPrefix("decode_head.conv_cat."):
			return "", fmt.Errorf("an mmseg FCN head with concat_input=True: only the HRNet configs' head (concat_input=False) is supported")
		case !hasPrefix("decode_head."):
			return Backbone, nil // a backbone alone, in mmseg's names
		case !has("decode_head.conv_seg.weight"):
			return "", fmt.Errorf("an mmseg model whose decode head is not an FCNHead (no decode_head.conv_seg): only FCN-HRNet is supported")
		case !has("decode_head.convs.0.conv.weight"):
			return "", fmt.Errorf("an mmseg FCN head without convs.0 (num_convs=0): only the HRNet configs' head is supported")
		}
		return MMSeg, nil
	case has("last_layer.3.weight"):
		for _, k := range ocrKeys {
			if hasPrefix(k) {
				return "", fmt.Errorf("an official HRNet-OCR model (%s*): only the plain HRNet segmentation head (last_layer) is supported", k)
			}
		}
		return Official, nil
	case has("conv1.weight") && has("layer1.0.conv1.weight"):
		return Backbone, nil
	}
	sample := make([]string, 0, len(t))
	for name := range t {
		sample = append(sample, name)
	}
	sort.Strings(sample)
	if len(sample) > 5 {
		sample = sample[:5]
	}
	for i, name := range sample {
		sample[i] = weights.Quote(name)
	}
	return "", fmt.Errorf("not an HRNet checkpoint segkit knows (keys such as %s); supported: mmseg FCN-HRNet (backbone.*, decode_head.*), official HRNet-Semantic-Segmentation (last_layer.*), ImageNet HRNet backbones (conv1, layer1, stage2-4)",
		strings.Join(sample, ", "))
}

var mmsegHead = map[string]string{
	"decode_head.convs.0.conv.weight": "last_layer.0.weight",
	"decode_head.convs.0.conv.bias":   "last_layer.0.bias",
	"decode_head.conv_seg.weight":     "last_layer.3.weight",
	"decode_head.conv_seg.bias":       "last_layer.3.bias",
}

func (m *Model) mapMMSeg(t map[string]weights.Tensor) error {
	for name, v := range t {
		switch {
		case strings.HasPrefix(name, "backbone."):
			m.take(strings.TrimPrefix(name, "backbone."), v)
		case mmsegHead[name] != "":
			m.take(mmsegHead[name], v)
		case strings.HasPrefix(name, "decode_head.convs.0.bn."):
			m.take("last_layer.1."+strings.TrimPrefix(name, "decode_head.convs.0.bn."), v)
		default: // auxiliary_head.*, anything else around the model
			m.Report.Dropped = append(m.Report.Dropped, name)
		}
	}
	if w := m.Tensors["last_layer.0.weight"]; len(w.Shape) == 4 && (w.Shape[2] != 1 || w.Shape[3] != 1) {
		return fmt.Errorf("an mmseg FCN head with a %d×%d conv: only the HRNet configs' 1×1 (kernel_size=1) is supported", w.Shape[2], w.Shape[3])
	}
	return nil
}

// checkHead checks the segmentation head's shapes against the layout: the 1×1 conv maps the
// concatenated branches (their channels summed) to as many channels, the classifier those to
// 1–dataset.MaxClasses classes. It then gives mmseg's head conv its bias.
func (m *Model) checkHead() error {
	cfg, err := hrnet.Lookup(m.Config)
	if err != nil {
		return err
	}
	c := 0
	for _, ch := range cfg.Stages[2].Channels {
		c += ch
	}
	want := func(name string, shape ...int) error {
		t, ok := m.Tensors[name]
		switch {
		case !ok && strings.HasSuffix(name, ".bias"):
			return nil
		case !ok:
			return fmt.Errorf("no %s: HRNetV2-%s's head has one of shape %v", name, m.Config, shape)
		}
		if !slices.Equal(t.Shape, shape) {
			return fmt.Errorf("%s has shape %s: HRNetV2-%s's is %v", name, weights.Quote(fmt.Sprint(t.Shape)), m.Config, shape)
		}
		return nil
	}
	w := m.Tensors["last_layer.3.weight"]
	if k := w.Shape[0]; k < 1 || k > dataset.MaxClasses {
		return fmt.Errorf("a classifier (last_layer.3.weight) of %d classes: at most %d", k, dataset.MaxClasses)
	}
	for _, e := range []error{
		want("last_layer.0.weight", c, c, 1, 1), want("last_layer.0.bias", c),
		want("last_layer.3.weight", w.Shape[0], c, 1, 1), want("last_layer.3.bias", w.Shape[0]),
	} {
		if e != nil {
			return e
		}
	}
	if _, ok := m.Tensors["last_layer.0.bias"]; !ok && m.Family == MMSeg {
		// ConvModule before a norm has no bias: a zero bias computes the same.
		m.Tensors["last_layer.0.bias"] = weights.Tensor{Shape: []int{c}, Data: make([]float32, c)}
		m.Report.Synthesized = append(m.Report.Synthesized, "last_layer.0.bias (zeros: mmseg's head conv has none)")
	}
	return nil
}

func (m *Model) mapOfficial(t map[string]weights.Tensor, integer []string, bn BN) error {
	for name, v := range t {
		if strings.HasPrefix(name, "loss.") { // class weights of the training loss
			m.Report.Dropped = append(m.Report.Dropped, name)
			continue
		}
		m.take(name, v)
	}
	abn := bn == BNInPlaceABN
	if bn == BNDetect {
		abn = !slices.ContainsFunc(integer, func(n string) bool { return strings.HasSuffix(n, "num_batches_tracked") })
	}
	if !abn {
		return nil
	}
	m.ABN = true
	for name, v := range m.Tensors {
		base, ok := strings.CutSuffix(name, ".weight")
		if _, isBN := m.Tensors[base+".running_var"]; !ok || !isBN {
			continue
		}
		folded := make([]float32, len(v.Data))
		for i, g := range v.Data {
			folded[i] = float32(math.Abs(float64(g))) + abnEps
		}
		m.Tensors[name] = weights.Tensor{Shape: v.Shape, Data: folded}
		m.Report.Folded = append(m.Report.Folded, name)
	}
	return nil
}

// classification is what an ImageNet HRNet has on top of the backbone.
var classification = []string{"incre_modules.", "downsamp_modules.", "final_layer.", "classifier."}

func (m *Model) mapBackbone(t map[string]weights.Tensor) error {
	for name, v := range t {
		name = strings.TrimPrefix(name, "backbone.")
		if slices.ContainsFunc(classification, func(p string) bool { return strings.HasPrefix(name, p) }) {
			m.Report.Dropped = append(m.Report.Dropped, name)
			continue
		}
		m.take(name, v)
	}
	return nil
}

func (m *Model) take(name string, v weights.Tensor) {
	m.Tensors[name] = v
	m.Report.Mapped++
}

var (
	layer1Block = regexp.MustCompile(`^layer1\.(\d+)\.conv1\.weight$`)
	stageModule = regexp.MustCompile(`^stage([234])\.(\d+)\.branches\.(\d+)\.(\d+)\.conv1\.weight$`)
)

// bounds are the most blocks (stage 1), modules, branches and blocks (stages 2-4) that any of
// hrnet.Configs has: a name's indices are read within them, so that a forged index cannot size
// anything.
var bounds = func() (b struct {
	stage1                    int
	modules, branches, blocks [3]int
}) {
	for _, c := range hrnet.Configs {
		b.stage1 = max(b.stage1, c.Stage1Blocks)
		for i, st := range c.Stages {
			b.modules[i] = max(b.modules[i], st.Modules)
			b.branches[i] = max(b.branches[i], len(st.Channels))
			b.blocks[i] = max(b.blocks[i], st.Blocks)
		}
	}
	return b
}()

// index reads a name's index, refusing one at or past bound.
func index(name, what, s string, bound int) (int, error) {
	n, err := strconv.Atoi(s)
	if err != nil || len(s) > 9 || n >= bound {
		return 0, fmt.Errorf("tensor %s: %s %s, beyond every HRNet layout segkit has (at most %d)", weights.Quote(name), what, weights.Quote(s), bound)
	}
	return n, nil
}

// inferConfig reads the HRNet layout off the tensor shapes and finds it among hrnet.Configs.
func inferConfig(t map[string]weights.Tensor) (string, error) {
	var c hrnet.Config
	for name, v := range t {
		if g := layer1Block.FindStringSubmatch(name); g != nil {
			n, err := index(name, "stage 1 block", g[1], bounds.stage1)
			if err != nil {
				return "", err
			}
			c.Stage1Blocks = max(c.Stage1Blocks, n+1)
			if n == 0 && len(v.Shape) > 0 {
				c.Planes = v.Shape[0]
			}
		}
		if g := stageModule.FindStringSubmatch(name); g != nil {
			k := int(g[1][0] - '0') // 2, 3 or 4
			var mod, br, blk int
			var err error
			for _, p := range []struct {
				dst   *int
				what  string
				bound int
				s     string
			}{{&mod, "module", bounds.modules[k-2], g[2]}, {&br, "branch", bounds.branches[k-2], g[3]}, {&blk, "block", bounds.blocks[k-2], g[4]}} {
				if *p.dst, err = index(name, fmt.Sprintf("stage %d %s", k, p.what), p.s, p.bound); err != nil {
					return "", err
				}
			}
			st := &c.Stages[k-2]
			st.Modules = max(st.Modules, mod+1)
			st.Blocks = max(st.Blocks, blk+1)
			for len(st.Channels) <= br {
				st.Channels = append(st.Channels, 0)
			}
			if mod == 0 && blk == 0 && len(v.Shape) > 0 {
				st.Channels[br] = v.Shape[0]
			}
		}
	}
	for _, known := range hrnet.Configs {
		if known.Stage1Blocks == c.Stage1Blocks && known.Planes == c.Planes && sameStages(known.Stages, c.Stages) {
			return known.Name, nil
		}
	}
	names := make([]string, len(hrnet.Configs))
	for i, k := range hrnet.Configs {
		names[i] = k.Name
	}
	return "", fmt.Errorf("an HRNet layout segkit does not have (stage 1: %d blocks of %d planes; stages 2-4: %v); supported: %s",
		c.Stage1Blocks, c.Planes, c.Stages, strings.Join(names, ", "))
}

func sameStages(a, b [3]hrnet.Stage) bool {
	for i := range a {
		if a[i].Modules != b[i].Modules || a[i].Blocks != b[i].Blocks || !slices.Equal(a[i].Channels, b[i].Channels) {
			return false
		}
	}
	return true
}
