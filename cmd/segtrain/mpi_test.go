//go:build mpi

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/segkit/segkit/internal/mpi/mpirun"
	"github.com/segkit/segkit/segmentation/checkpoint"
	"github.com/segkit/segkit/segmentation/train"
)

// runLosses reads the per-iteration losses of a run directory's log.
func runLosses(t *testing.T, dir string) map[int]float64 {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(dir, "train.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	out := map[int]float64{}
	for _, line := range strings.Split(strings.TrimSpace(string(raw)), "\n") {
		var e struct {
			Iter int
			Loss *float64
		}
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatal(err)
		}
		if e.Loss != nil {
			out[e.Iter] = *e.Loss
		}
	}
	return out
}

// asSegtrain makes this test binary act as segtrain (TestMain).
const asSegtrain = "SEGKIT_AS_SEGTRAIN=1"

// TestMain lets the test binary act as segtrain, with SEGKIT_FAULT's fault injected through
// Run.BeforeStep, a test option: the product binary reads no fault from its environment.
func TestMain(m *testing.M) {
	if os.Getenv("SEGKIT_AS_SEGTRAIN") != "" {
		beforeTrain = func(r *train.Run) {
			if r.Comm.Size() <= 1 {
				return
			}
			hook, err := faultHook(os.Getenv("SEGKIT_FAULT"), r.Comm.Rank())
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				os.Exit(2)
			}
			r.BeforeStep = hook
		}
		main()
	}
	os.Exit(m.Run())
}

// faultHook parses SEGKIT_FAULT, the fault injection of the data-parallel tests:
// "kill@ITER:RANK" makes rank RANK kill itself (SIGKILL) as iteration ITER begins,
// "exit@ITER:RANK" makes it exit with status 3 there. Empty: no hook.
func faultHook(spec string, rank int) (func(int), error) {
	if spec == "" {
		return nil, nil
	}
	var at, who int
	kind, where, ok := strings.Cut(spec, "@")
	if _, err := fmt.Sscanf(where, "%d:%d", &at, &who); !ok || err != nil || (kind != "kill" && kind != "exit") {
		return nil, fmt.Errorf("SEGKIT_FAULT=%q: kill@ITER:RANK or exit@ITER:RANK", spec)
	}
	if who != rank {
		return nil, nil
	}
	return func(it int) {
		if it != at {
			return
		}
		fmt.Fprintf(os.Stderr, "segtrain: rank %d: SEGKIT_FAULT %s at iteration %d\n", rank, kind, it)
		if kind == "kill" {
			syscall.Kill(os.Getpid(), syscall.SIGKILL)
		}
		os.Exit(3)
	}, nil
}

// segtrain under mpirun, as a user runs it: one rank is a plain run bit for bit, two 2-rank runs
// are identical, two ranks × 2 give one process × 4's first losses within 1e-5 and its mIoU;
// rank 1 killed at iteration 3 ends the job naming it, with whole checkpoints, and --resume
// continues to the losses of the uninterrupted 2-rank run; SIGUSR1 stops every rank at one
// iteration with a checkpoint.
func TestSegtrainMPI(t *testing.T) {
	run := mpirun.Find(t)
	bin, err := os.Executable() // segtrain, with the fault hook (TestMain)
	if err != nil {
		t.Fatal(err)
	}
	args := func(out string, extra ...string) []string {
		return append([]string{"--crop", "64", "--batch", "4", "--iters", "6", "--lr", "0.01", "--alpha-lr", "0.01", "--ckpt-every", "2",
			"--eval-every", "6", "--log-every", "1", "--no-bar", "--out", out, "--name", "run"}, extra...)
	}
	mpi := func(np int, env []string, a ...string) (string, error) {
		cmd := mpirun.Command(context.Background(), run, np, 2*time.Minute, append(env, asSegtrain), bin, a...)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	plain := t.TempDir()
	cmd := exec.Command(bin, args(plain)...)
	cmd.Env = append(os.Environ(), asSegtrain)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("plain run: %v\n%s", err, out)
	}
	ref := runLosses(t, filepath.Join(plain, "run"))

	one := t.TempDir()
	if out, err := mpi(1, nil, args(one)...); err != nil {
		t.Fatalf("1 rank: %v\n%s", err, out)
	}
	if got := runLosses(t, filepath.Join(one, "run")); !equalLosses(got, ref) {
		t.Errorf("1 rank under mpirun: losses %v, a plain run's %v", got, ref)
	}

	var twos []map[int]float64
	var twoOut string
	for range 2 {
		dir := t.TempDir()
		out, err := mpi(2, nil, args(dir)...)
		if err != nil {
			t.Fatalf("2 ranks: %v\n%s", err, out)
		}
		twos, twoOut = append(twos, runLosses(t, filepath.Join(dir, "run"))), out
	}
	if !equalLosses(twos[0], twos[1]) {
		t.Errorf("two 2-rank runs: losses %v and %v", twos[0], twos[1])
	}
	for it := 1; it <= 2; it++ {
		if d := math.Abs(twos[0][it]-ref[it]) / ref[it]; d > 1e-5 {
			t.Errorf("iteration %d: 2 ranks × 2 differ from 1 × 4 by %.3g", it, d)
		}
	}
	if !strings.Contains(twoOut, "data parallel: 2 ranks × 2 images = batch 4; SyncBN") {
		t.Errorf("2-rank output:\n%s", twoOut)
	}

	// Rank 1 dies at iteration 3.
	dir := t.TempDir()
	out, err := mpi(2, []string{"SEGKIT_FAULT=kill@3:1"}, args(dir)...)
	if err == nil || !strings.Contains(out, "process rank 1") { // mpirun names the rank that died
		t.Fatalf("rank 1 killed: exit %v, output:\n%s", err, out)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "run", "ckpt_iter_*"))
	tmp, _ := filepath.Glob(filepath.Join(dir, "run", ".tmp-*"))
	if len(files) != 1 || filepath.Base(files[0]) != "ckpt_iter_0000002.safetensors" || len(tmp) > 0 {
		t.Fatalf("after the kill: checkpoints %v, temporary files %v", files, tmp)
	}
	if _, err := checkpoint.LoadCheckpoint(files[0]); err != nil {
		t.Fatal(err)
	}
	if out, err := mpi(2, nil, "--resume", filepath.Join(dir, "run"), "--no-bar"); err != nil {
		t.Fatalf("resume: %v\n%s", err, out)
	}
	if got := runLosses(t, filepath.Join(dir, "run")); !equalLosses(got, twos[0]) {
		t.Errorf("resumed: losses %v, the uninterrupted 2-rank run's %v", got, twos[0])
	}

	// SIGUSR1 to mpirun reaches every rank: they stop at the same iteration, rank 0 checkpoints.
	dir = t.TempDir()
	cmd = mpirun.Command(context.Background(), run, 2, 2*time.Minute, []string{asSegtrain}, bin, args(dir, "--iters", "100000", "--ckpt-every", "0")...)
	var log strings.Builder
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) { // until the ranks are training
		if raw, _ := os.ReadFile(filepath.Join(dir, "run", "train.jsonl")); strings.Contains(string(raw), `"loss"`) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	cmd.Process.Signal(syscall.SIGUSR1)
	err = cmd.Wait()
	ckpts, _ := filepath.Glob(filepath.Join(dir, "run", "ckpt_iter_*.safetensors"))
	if err == nil || len(ckpts) != 1 || !strings.Contains(log.String(), "interrupted at iteration") {
		t.Errorf("SIGUSR1: %v, checkpoints %v, output:\n%s", err, ckpts, log.String())
	}
}

func equalLosses(a, b map[int]float64) bool {
	if len(a) != len(b) || len(a) == 0 {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}
