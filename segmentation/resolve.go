package segmentation

import (
	"fmt"
	"reflect"
	"slices"
	"strings"

	"github.com/segkit/segkit/dataset"
)

// Sources are where a run's settings come from besides the defaults and the dataset's recipe.
type Sources struct {
	File  string   // a YAML or JSON file of settings ("": none)
	Flags Config   // the command line's values
	Set   []string // the flags the command line set, by name ("eval-every")
}

func (s Sources) set(name string) bool { return slices.Contains(s.Set, name) }

// Base are the settings a run starts from: the demo's without a dataset, else the recipe of
// the dataset's layout, with lines saying which layout Data was recognised as and whose recipe
// it is.
type Base struct {
	Config     Config
	Recognised string // "--data D: NAME recognised by FILES\n" ("": named, or the demo)
	Recipe     string // "recipe of NAME: SOURCE (...)\n" ("": the demo)
}

// Defaults returns the base for a dataset root and layout name: the demo's without either,
// else the layout's recipe (the layout recognised by data's files when name is empty; the
// recipe then leaves Dataset empty for the run to say how it was found, and Config.found holds
// the answer, so the files are looked at once).
func Defaults(data, name string) (Base, error) {
	if data == "" && name == "" {
		return Base{Config: DemoConfig()}, nil
	}
	var b Base
	var found *recognised
	if name == "" {
		f, err := dataset.Detect(data)
		if err != nil {
			return b, SettingError{fmt.Errorf("--data: %w", err)}
		}
		name, found = f.Name, &recognised{data: data, Found: f}
		b.Recognised = fmt.Sprintf("--data %s: %s recognised by %s\n", data, f.Name, f.By)
	}
	r, err := RecipeFor(name)
	if err != nil {
		return b, SettingError{fmt.Errorf("--dataset: %w", err)}
	}
	b.Config, b.Recipe = r.Config, fmt.Sprintf("recipe of %s: %s ('segtrain recipe %s' shows it)\n", name, r.Source, name)
	if found != nil {
		b.Config.Dataset, b.Config.found = "", found
	}
	return b, nil
}

// Resolve returns a new run's settings: the defaults (the demo's, or with a dataset from the
// flags or the file its recipe), then the file, then the flags set. A crop other than the
// recipe's keeps the recipe's scales in proportion unless they are given. The string says whose
// recipe applies. A setting that cannot work is a SettingError.
func Resolve(src Sources) (Config, string, error) {
	var file Config
	if src.File != "" {
		var err error
		if file, err = LoadConfig(src.File, Config{}); err != nil {
			return file, "", SettingError{fmt.Errorf("--config: %w", err)}
		}
	}
	data, name := file.Data, file.Dataset
	if src.set("data") {
		data = src.Flags.Data
	}
	if src.set("dataset") {
		name = src.Flags.Dataset
	}
	base, err := Defaults(data, name)
	if err != nil {
		return base.Config, "", err
	}
	cfg := base.Config
	if src.File != "" {
		if cfg, err = LoadConfig(src.File, cfg); err != nil {
			return cfg, "", SettingError{fmt.Errorf("--config: %w", err)}
		}
	}
	for _, f := range src.Set {
		cfg.copyKey(src.Flags, strings.ReplaceAll(f, "-", "_"))
	}
	scaled := base.Config.ScaleCrop(cfg.CropSize())
	if !src.set("scale") && file.Scale == [2]int{} {
		cfg.Scale = scaled.Scale
	}
	if !src.set("test-scale") && file.TestScale == [2]int{} {
		cfg.TestScale = scaled.TestScale
	}
	if err := cfg.Validate(); err != nil {
		return cfg, "", err
	}
	return cfg, base.Recipe, nil
}

// ResumeOverrides returns the settings (Config's JSON keys) that the flags set for a resumed
// run; a flag that would change the run is refused, naming it, not silently dropped.
func ResumeOverrides(set []string) ([]string, error) {
	var keys, refused []string
	for _, f := range set {
		if key := strings.ReplaceAll(f, "-", "_"); slices.Contains(ResumeSettings, key) {
			keys = append(keys, key)
		} else {
			refused = append(refused, "--"+f)
		}
	}
	if len(refused) > 0 {
		return nil, SettingError{fmt.Errorf("%s cannot change when resuming: the run keeps its checkpoint's settings (with --resume only %s may be given)",
			strings.Join(refused, ", "), ResumeFlags())}
	}
	return keys, nil
}

// copyKey copies the setting key (a JSON key) of src into c; --crop is the crop's height and
// width.
func (c *Config) copyKey(src Config, key string) {
	dst, from := reflect.ValueOf(c).Elem(), reflect.ValueOf(src)
	for i := 0; i < dst.NumField(); i++ {
		if name, _, _ := strings.Cut(dst.Type().Field(i).Tag.Get("json"), ","); name == key || key == "crop" && name == "crop_w" {
			dst.Field(i).Set(from.Field(i))
		}
	}
}

// recognised is the layout Defaults recognised a dataset root as.
type recognised struct {
	data string
	dataset.Found
}
