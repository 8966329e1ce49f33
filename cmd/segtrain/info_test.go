package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

func run(args ...string) (string, error) {
	cmd := newRootCmd()
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	cmd.SetArgs(args)
	err := cmd.Execute()
	return out.String(), err
}

func TestInfoJSON(t *testing.T) {
	out, err := run("info", "--model", "w18_small_v1", "--resize", "dynopool", "--size", "100x75", "--classes", "19", "--json")
	if err != nil {
		t.Fatal(err)
	}
	var info struct {
		Params      int      `json:"params"`
		GMACs       float64  `json:"gmacs"`
		BranchSizes [][2]int `json:"branch_sizes"`
	}
	if err := json.Unmarshal([]byte(out), &info); err != nil {
		t.Fatalf("%q: %v", out, err)
	}
	// 1,540,819 official parameters + 8 alphas; sizes round half to even (the reference's).
	want := [][2]int{{25, 19}, {12, 10}, {6, 5}, {3, 2}}
	if info.Params != 1540819+8 || info.GMACs <= 0 || len(info.BranchSizes) != 4 {
		t.Fatalf("info %+v", info)
	}
	for i := range want {
		if info.BranchSizes[i] != want[i] {
			t.Errorf("branch sizes %v, want %v", info.BranchSizes, want)
		}
	}
}

func TestInfoRejectsBadInput(t *testing.T) {
	for _, args := range [][]string{{"--model", "w64"}, {"--size", "0x5"}, {"--size", "axb"}, {"--resize", "bilinear"}, {"--classes", "0"}} {
		_, err := run(append([]string{"info"}, args...)...)
		var u usageError
		if !errors.As(err, &u) {
			t.Errorf("%s: %v is not a usage error (exit status 2)", strings.Join(args, " "), err)
		}
	}
}

func TestBenchJSON(t *testing.T) {
	out, err := run("bench", "--model", "w18_small_v1", "--resize", "dynopool", "--crop", "64", "--iters", "1", "--json")
	if err != nil {
		t.Fatal(err)
	}
	var res map[string]float64
	json.Unmarshal([]byte(out), &res)
	for _, k := range []string{"train_step_ms", "infer_ms", "peak_rss_mb", "gmacs"} {
		if res[k] <= 0 {
			t.Errorf("%s = %v in %s", k, res[k], out)
		}
	}
	// Batch 1 times inference alone.
	out, err = run("bench", "--model", "w18_small_v1", "--crop", "64", "--batch", "1", "--iters", "1", "--json")
	if err != nil {
		t.Fatal(err)
	}
	var one map[string]any
	if err := json.Unmarshal([]byte(out), &one); err != nil {
		t.Fatal(err)
	}
	if ms, ok := one["infer_ms"].(float64); !ok || ms <= 0 || one["train_step_ms"] != nil {
		t.Errorf("batch 1: infer_ms %v, train_step_ms %v (want a time, and null)", one["infer_ms"], one["train_step_ms"])
	}
	for _, args := range [][]string{{"--batch", "0"}, {"--batch", "1", "--threads-sweep"}} {
		if _, err := run(append([]string{"bench"}, args...)...); err == nil {
			t.Errorf("bench %v accepted", args)
		}
	}
}
