package main

import (
	"encoding/json"
	"fmt"
	"regexp"
	"runtime"
	"strings"
	"testing"

	"github.com/segkit/segkit/segmentation/bench"
)

// --threads-sweep prints a row per thread count, then each phase's ops with their load balance
// for every count of --split-workers; --json says the same in one line.
func TestBenchThreadsSweep(t *testing.T) {
	args := []string{"bench", "--model", "w18_small_v1", "--crop", "64", "--iters", "1", "--threads-sweep", "--split-workers", "4,16"}
	out, err := run(args...)
	if err != nil {
		t.Fatal(err)
	}
	counts := bench.ThreadCounts(runtime.GOMAXPROCS(0))
	for _, n := range counts {
		if !regexp.MustCompile(fmt.Sprintf(`(?m)^ +%d +[0-9.]+ +[0-9.]+× +[0-9.]+%%`, n)).MatchString(out) {
			t.Errorf("no row for %d threads:\n%s", n, out)
		}
	}
	train, infer, ok := strings.Cut(out, "\ninfer (")
	for _, want := range []string{"on 4 and 16 workers", "train (", "nn.convFilter", "all parallel calls", "the whole step"} {
		if !ok || !strings.Contains(train, want) {
			t.Errorf("the training part lacks %q:\n%s", want, out)
		}
	}
	if !strings.Contains(infer, "nn.convBN") || strings.Contains(infer, "nn.convFilter") {
		t.Errorf("inference ops:\n%s", infer)
	}

	out, err = run(append(args, "--json")...)
	if err != nil {
		t.Fatal(err)
	}
	type balance struct {
		Calls, Items int
		Efficiency   float64 `json:"efficiency"`
	}
	var res struct {
		Rows  []map[string]any `json:"threads_sweep"`
		Split struct {
			Workers []int `json:"workers"`
			Train   map[string]struct {
				Efficiency float64            `json:"efficiency"`
				Ops        map[string]balance `json:"ops"`
			} `json:"train"`
		} `json:"work_split"`
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("%q: %v", out, err)
	}
	if len(res.Rows) != len(counts) || res.Rows[0]["train_efficiency"] != 1.0 || res.Rows[0]["train_step_ms"] == nil {
		t.Errorf("rows %v for thread counts %v", res.Rows, counts)
	}
	for _, w := range []string{"4", "16"} {
		conv, ok := res.Split.Train[w].Ops["nn.conv2d"]
		if e := res.Split.Train[w].Efficiency; !ok || conv.Items < conv.Calls || e <= 0 || e > 1 {
			t.Errorf("%s workers: step efficiency %v, conv2d %+v", w, e, conv)
		}
	}
	// 16 workers split the convolutions into more blocks than 4 do.
	if a, b := res.Split.Train["4"].Ops["nn.conv2d"], res.Split.Train["16"].Ops["nn.conv2d"]; a.Items >= b.Items {
		t.Errorf("conv2d work items with 4 workers %d, with 16 %d", a.Items, b.Items)
	}
}
