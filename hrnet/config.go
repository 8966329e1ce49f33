package hrnet

import (
	"fmt"
	"slices"
	"strings"
)

// Stage is one of stages 2–4: Modules high-resolution modules, each branch with Blocks
// BasicBlocks, Channels[i] channels on branch i.
type Stage struct {
	Modules, Blocks int
	Channels        []int
}

// Config is an HRNetV2 layout: stage 1 has Stage1Blocks Bottlenecks of Planes planes (4×Planes
// output channels); Stages are stages 2, 3 and 4.
type Config struct {
	Name         string
	Stage1Blocks int
	Planes       int
	Stages       [3]Stage
}

// Configs are the published layouts (HRNet-Semantic-Segmentation experiments/*.yaml).
var Configs = []Config{
	{"w18_small_v1", 1, 32, [3]Stage{{1, 2, []int{16, 32}}, {1, 2, []int{16, 32, 64}}, {1, 2, []int{16, 32, 64, 128}}}},
	{"w18_small_v2", 2, 64, [3]Stage{{1, 2, []int{18, 36}}, {3, 2, []int{18, 36, 72}}, {2, 2, []int{18, 36, 72, 144}}}},
	{"w18", 4, 64, [3]Stage{{1, 4, []int{18, 36}}, {4, 4, []int{18, 36, 72}}, {3, 4, []int{18, 36, 72, 144}}}},
	{"w32", 4, 64, [3]Stage{{1, 4, []int{32, 64}}, {4, 4, []int{32, 64, 128}}, {3, 4, []int{32, 64, 128, 256}}}},
	{"w48", 4, 64, [3]Stage{{1, 4, []int{48, 96}}, {4, 4, []int{48, 96, 192}}, {3, 4, []int{48, 96, 192, 384}}}},
}

// Lookup returns the named config.
func Lookup(name string) (Config, error) {
	i := slices.IndexFunc(Configs, func(c Config) bool { return c.Name == name })
	if i < 0 {
		names := make([]string, len(Configs))
		for j, c := range Configs {
			names[j] = c.Name
		}
		return Config{}, fmt.Errorf("unknown HRNet config %q (have %s)", name, strings.Join(names, ", "))
	}
	return Configs[i], nil
}
