package bench

import (
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/segkit/segkit/hrnet"
	"github.com/segkit/segkit/internal/kernels"
	"github.com/segkit/segkit/segmentation"
)

// ThreadCounts lists 1, 2, 4, … below most, then most.
func ThreadCounts(most int) []int {
	var counts []int
	for t := 1; t < most; t *= 2 {
		counts = append(counts, t)
	}
	return append(counts, most)
}

// threadsSweep runs the bench at each thread count (GOMAXPROCS and the kernels' Workers) and
// adds to each row the speed-up and parallel efficiency over the first (1 thread).
func threadsSweep(m *hrnet.Model, batch, crop, iters int, counts []int) ([]map[string]any, error) {
	defer func(procs, workers int) { runtime.GOMAXPROCS(procs); kernels.Workers = workers }(runtime.GOMAXPROCS(0), kernels.Workers)
	var rows []map[string]any
	for _, t := range counts {
		runtime.GOMAXPROCS(t)
		kernels.Workers = t
		res, err := Run(m, batch, crop, iters, false)
		if err != nil {
			return nil, fmt.Errorf("%d threads: %w", t, err)
		}
		res["threads"] = t
		rows = append(rows, res)
	}
	for _, row := range rows {
		for _, phase := range []string{"train_step", "infer"} {
			phaseName, _, _ := strings.Cut(phase, "_")
			speedup := rows[0][phase+"_ms"].(float64) / row[phase+"_ms"].(float64)
			row[phaseName+"_speedup"] = round3(speedup)
			// Against the first row's threads, in case it is not 1.
			row[phaseName+"_efficiency"] = round3(speedup * float64(rows[0]["threads"].(int)) / float64(row["threads"].(int)))
		}
	}
	return rows, nil
}

func printThreadsSweep(w io.Writer, rows []map[string]any) {
	fmt.Fprintf(w, "%7s  %10s %9s %11s  %10s %9s %11s\n", "threads", "train ms", "speed-up", "efficiency", "infer ms", "speed-up", "efficiency")
	for _, r := range rows {
		fmt.Fprintf(w, "%7d  %10.1f %8.2f× %10.1f%%  %10.1f %8.2f× %10.1f%%\n", r["threads"], r["train_step_ms"], r["train_speedup"],
			100*r["train_efficiency"].(float64), r["infer_ms"], r["infer_speedup"], 100*r["infer_efficiency"].(float64))
	}
}

// splitAssumes is what the work-split model takes for granted, said with its numbers.
const splitAssumes = "Workers set to each count, so blocks and chunks are sized as the code sizes them for that many " +
	"cores; every item timed alone, one after another, on this machine (CPU time, the least of 3 steps); one core per goroutine, items assigned as " +
	"the code assigns them (item i to goroutine i mod goroutines), no memory-bandwidth or cache limit; the time " +
	"outside the parallel calls stays serial"

// splitRepeats is how many recorded steps each item's least time is taken over.
const splitRepeats = 3

// phaseSplit is the work split of one phase (a training step or an inference) for each count
// of workers.
type phaseSplit struct {
	Phase   string
	Records []kernels.SplitRecord
}

// recordWorkSplit records, for each count of workers, the kernels' work split in one training
// step and one inference, after a warm-up of each (graph building is not part of a step).
func recordWorkSplit(m *hrnet.Model, batch, crop int, workers []int) ([]phaseSplit, error) {
	train, infer := phaseSplit{Phase: "train"}, phaseSplit{Phase: "infer"}
	for _, w := range workers {
		_, trainStep, inferStep := benchSteps(m, batch, crop)
		for _, p := range []struct {
			split *phaseSplit
			step  func() error
		}{{&train, trainStep}, {&infer, inferStep}} {
			if err := p.step(); err != nil {
				return nil, err
			}
			rec, err := kernels.RecordSplit(w, splitRepeats, kernelCaller, p.step)
			if err != nil {
				return nil, err
			}
			p.split.Records = append(p.split.Records, rec)
		}
	}
	return []phaseSplit{train, infer}, nil
}

// kernelCaller names what called a parallel kernel: the graph op whose Run the executor called
// (nn.convBN, dynopool.…), or else the first function outside the kernels package
// (nn.(*SGD).Step). It runs inside the kernel, so it reads the stack.
func kernelCaller() string {
	pcs := make([]uintptr, 64)
	frames := runtime.CallersFrames(pcs[:runtime.Callers(2, pcs)])
	var outside, previous string
	for {
		f, more := frames.Next()
		name := f.Function[strings.LastIndex(f.Function, "/")+1:]
		if name == "nn.op.Do" || name == "nn.op.UsePreallocDo" {
			return strings.NewReplacer("(*", "", ")", "").Replace(strings.TrimSuffix(previous, ".Run"))
		}
		if outside == "" && !strings.HasPrefix(name, "kernels.") {
			outside = name
		}
		previous = name
		if !more {
			return outside
		}
	}
}

func ms(d time.Duration) float64 { return round3(float64(d) / 1e6) }

// workSplitJSON is the work split as JSON: per phase and count of workers, the step's expected
// efficiency (serial part included), the parallel calls' and each op's.
func workSplitJSON(splits []phaseSplit, workers []int) map[string]any {
	out := map[string]any{"workers": workers, "assumes": splitAssumes}
	for _, s := range splits {
		byWorkers := map[string]any{}
		for _, rec := range s.Records {
			byOp, all := rec.ByOp()
			ops := map[string]any{}
			for op, b := range byOp {
				ops[op] = map[string]any{"calls": b.Calls, "items": b.Items, "work_ms": ms(b.Work), "makespan_ms": ms(b.Makespan),
					"efficiency": round3(b.Efficiency(rec.Workers))}
			}
			byWorkers[strconv.Itoa(rec.Workers)] = map[string]any{"step_ms": ms(rec.Step), "serial_ms": ms(rec.Serial()),
				"calls": all.Calls, "items": all.Items, "work_ms": ms(all.Work), "makespan_ms": ms(all.Makespan),
				"parallel_efficiency": round3(all.Efficiency(rec.Workers)), "efficiency": round3(rec.Overall()), "ops": ops}
		}
		out[s.Phase] = byWorkers
	}
	return out
}

// printWorkSplit prints, per phase, each op's share of the work and, for each count of
// workers, its items per call, their mean time and the expected load balance.
func printWorkSplit(w io.Writer, splits []phaseSplit, workers []int) {
	fmt.Fprintf(w, "\nexpected load balance of the kernels' work split on %s workers (%s):\n", joinInts(workers, " and "), splitAssumes)
	for _, s := range splits {
		first := s.Records[0]
		byOp, all := first.ByOp()
		one := all.Work + first.Serial()
		fmt.Fprintf(w, "%s (%.1f ms on one core, %.1f%% outside the parallel calls):\n  %-26s %9s %6s %6s", s.Phase,
			ms(one), 100*float64(first.Serial())/float64(one), "op", "work ms", "share", "calls")
		for _, n := range workers {
			fmt.Fprintf(w, " | %3d: %10s %8s %7s", n, "items/call", "item µs", "balance")
		}
		fmt.Fprintln(w)
		ops := slices.Collect(maps.Keys(byOp))
		slices.SortFunc(ops, func(a, b string) int { return cmp.Or(cmp.Compare(byOp[b].Work, byOp[a].Work), strings.Compare(a, b)) })
		byWorkers := make([]map[string]*kernels.Balance, len(s.Records))
		for i, rec := range s.Records {
			byWorkers[i], _ = rec.ByOp()
		}
		for _, op := range ops {
			b := byOp[op]
			fmt.Fprintf(w, "  %-26s %9.1f %5.1f%% %6d", op, ms(b.Work), 100*float64(b.Work)/float64(one), b.Calls)
			for i, rec := range s.Records {
				if bw := byWorkers[i][op]; bw != nil && bw.Items > 0 {
					fmt.Fprintf(w, " | %5s%10.1f %8.1f %6.1f%%", "", float64(bw.Items)/float64(bw.Calls),
						float64(bw.Work.Microseconds())/float64(bw.Items), 100*bw.Efficiency(rec.Workers))
				} else {
					fmt.Fprintf(w, " | %32s", "-")
				}
			}
			fmt.Fprintln(w)
		}
		fmt.Fprintf(w, "  %-50s", "all parallel calls")
		for _, rec := range s.Records {
			_, a := rec.ByOp()
			fmt.Fprintf(w, " | %31.1f%%", 100*a.Efficiency(rec.Workers))
		}
		fmt.Fprintf(w, "\n  %-50s", "the whole step (its serial part too)")
		for _, rec := range s.Records {
			fmt.Fprintf(w, " | %31.1f%%", 100*rec.Overall())
		}
		fmt.Fprintln(w)
	}
}

func joinInts(v []int, sep string) string {
	s := make([]string, len(v))
	for i, n := range v {
		s[i] = strconv.Itoa(n)
	}
	return strings.Join(s, sep)
}

// ThreadsSweep is bench --threads-sweep: the bench at 1, 2, 4, … threads up to the cores this
// process may use, then the work-split model for the worker counts of splitFlag ("16,64"; a
// bad list is a segmentation.SettingError); the result is printed, or written as one JSON line.
func ThreadsSweep(w io.Writer, m *hrnet.Model, batch, crop, iters int, splitFlag string, asJSON bool) error {
	var splitWorkers []int
	for _, f := range strings.FieldsFunc(splitFlag, func(r rune) bool { return r == ',' || r == ' ' }) {
		n, err := strconv.Atoi(f)
		if err != nil || n < 1 {
			return segmentation.SettingError{Err: fmt.Errorf("--split-workers %q: worker counts ≥ 1, separated by commas", splitFlag)}
		}
		splitWorkers = append(splitWorkers, n)
	}
	most := runtime.GOMAXPROCS(0)
	rows, err := threadsSweep(m, batch, crop, iters, ThreadCounts(most))
	if err != nil {
		return err
	}
	var splits []phaseSplit
	if len(splitWorkers) > 0 {
		if splits, err = recordWorkSplit(m, batch, crop, splitWorkers); err != nil {
			return err
		}
	}
	if asJSON {
		out := map[string]any{"threads_sweep": rows}
		if splits != nil {
			out["work_split"] = workSplitJSON(splits, splitWorkers)
		}
		return json.NewEncoder(w).Encode(out)
	}
	fmt.Fprintf(w, "HRNetV2-%s %s, batch %d, %d×%d, %s kernels, 1 to %d threads (every core this process may use), median of %d:\n",
		m.Name, m.Resize, batch, crop, crop, kernels.Path(), most, iters)
	printThreadsSweep(w, rows)
	if splits != nil {
		printWorkSplit(w, splits, splitWorkers)
	}
	return nil
}
