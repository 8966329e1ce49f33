package checkpoint

import (
	"fmt"
	"slices"
	"strings"

	"github.com/segkit/segkit/importer"
	"github.com/segkit/segkit/nn"
	"github.com/segkit/segkit/segmentation"
	"github.com/segkit/segkit/weights"
)

// LoadPretrained starts params, HRNetV2-model's, from the weights of a file: segkit's, or
// trained elsewhere (mmseg, official, an ImageNet backbone) and converted; say reports what
// was read and left.
func LoadPretrained(params *nn.Params, path, model string, say func(format string, args ...any)) error {
	f, err := weights.Read(path)
	if err != nil {
		return err
	}
	tensors := f.Tensors
	if !segkitNames(tensors) {
		// Trained elsewhere (mmseg, official, an ImageNet backbone): segkit's names and layout.
		m, err := importer.Convert(f, importer.Options{})
		if err != nil {
			return fmt.Errorf("pretrained %s: %w", path, err)
		}
		say("pretrained %s: %s HRNetV2-%s; %v\n", path, m.Family, m.Config, m.Report)
		if m.Config != model {
			return segmentation.SettingError{Err: fmt.Errorf("pretrained %s is HRNetV2-%s: train it with --model %s", path, m.Config, m.Config)}
		}
		tensors = m.Tensors
	}
	// The alphas are ours; the head's last conv depends on the class count: leave it when it
	// does not fit, and the whole head when the file has none (an ImageNet backbone).
	skip := func(p *nn.Param, file *weights.Tensor) bool {
		return strings.HasPrefix(p.Name, "pools.") ||
			strings.HasPrefix(p.Name, "last_layer.") && file == nil ||
			strings.HasPrefix(p.Name, "last_layer.3.") && file != nil && !slices.Equal(file.Shape, []int(p.Value.Shape()))
	}
	rep := weights.Apply(params, tensors, skip)
	say("pretrained %s: %v\n", path, rep)
	if len(rep.Mismatched) > 0 || rep.Loaded == 0 {
		return fmt.Errorf("pretrained %s does not fit HRNetV2-%s: %v", path, model, rep)
	}
	return nil
}

// segkitNames reports whether tensors are named as segkit's checkpoints name them ("param/...").
func segkitNames(tensors map[string]weights.Tensor) bool {
	for name := range tensors {
		if strings.HasPrefix(name, "param/") {
			return true
		}
	}
	return false
}
