package cli

import (
	"fmt"
	"io"
	"os"
	"os/signal"
	"reflect"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/segkit/segkit/dataset"
	"github.com/segkit/segkit/internal/kernels"
	"github.com/segkit/segkit/segmentation"
	"github.com/spf13/pflag"
)

// TrainFlags binds the training flags to a Config; only the flags a user sets override the
// defaults (the demo's or mmseg's) and the config file (segmentation.Resolve).
type TrainFlags struct {
	Cfg        segmentation.Config
	ConfigFile string
	Resume     string
	NoBar      bool
	Threads    int           // kernel threads of this process (0: all cores it may use)
	Timeout    time.Duration // a data-parallel rank's longest wait for the others
	fs         *pflag.FlagSet
	set        map[string]bool // the flags of settings
}

// AddTrainFlags adds the training flags to fs.
func AddTrainFlags(fs *pflag.FlagSet) *TrainFlags {
	t := &TrainFlags{Cfg: segmentation.DefaultConfig(), fs: fs, set: map[string]bool{}}
	t.addSettings(fs)
	fs.StringVar(&t.ConfigFile, "config", "", "YAML or JSON file of settings (flags override it)")
	fs.StringVar(&t.Resume, "resume", "", "continue a run: its directory or a checkpoint")
	fs.BoolVar(&t.NoBar, "no-bar", false, "print log lines instead of a progress bar")
	fs.IntVar(&t.Threads, "threads", 0, "kernel threads of this process (default: every core it may run on)")
	fs.DurationVar(&t.Timeout, "timeout", 10*time.Minute, "under mpirun/srun: how long a rank waits for the others before ending the job with an error")
	return t
}

// addSettings adds a flag for every setting of Config with a help tag, named after its JSON
// key ("eval_every" is --eval-every); the pairs and the optional mask value take their forms
// of values (HxW, LONGxSHORT, MIN,MAX).
func (t *TrainFlags) addSettings(fs *pflag.FlagSet) {
	v := reflect.ValueOf(&t.Cfg).Elem()
	for i := range v.NumField() {
		field := v.Type().Field(i)
		help, ok := field.Tag.Lookup("help")
		if !ok {
			continue
		}
		key, _, _ := strings.Cut(field.Tag.Get("json"), ",")
		name := strings.ReplaceAll(key, "_", "-")
		help = strings.ReplaceAll(help, "{datasets}", strings.Join(dataset.Names(), ", "))
		switch p := v.Field(i).Addr().Interface().(type) {
		case *int:
			if name == "crop" { // the height; the width is crop_w
				fs.Var(CropValue{C: &t.Cfg}, name, help)
			} else {
				fs.IntVar(p, name, *p, help)
			}
		case *string:
			fs.StringVar(p, name, *p, help)
		case *float64:
			fs.Float64Var(p, name, *p, help)
		case *bool:
			fs.BoolVar(p, name, *p, help)
		case *uint64:
			fs.Uint64Var(p, name, *p, help)
		case *[2]int:
			fs.Var(ScaleValue{P: p}, name, help)
		case *[2]float64:
			fs.Var(RatioValue{P: p}, name, help)
		case **int:
			fs.Var(IgnoreValue{P: p}, name, help)
		default:
			panic(fmt.Sprintf("setting %s: no flag for a %T", key, p))
		}
		t.set[name] = true
	}
}

// Settings are the flags of settings that the command line set, by name: what
// segmentation.Resolve takes from it.
func (t *TrainFlags) Settings() []string {
	var set []string
	t.fs.Visit(func(f *pflag.Flag) {
		if t.set[f.Name] {
			set = append(set, f.Name)
		}
	})
	return set
}

// Forget makes name a flag of no setting (a command that reads it otherwise).
func (t *TrainFlags) Forget(name string) { delete(t.set, name) }

// Config returns a new run's settings (segmentation.Resolve) and the line saying whose recipe
// they follow; a setting that cannot work is a usage error.
func (t *TrainFlags) Config() (segmentation.Config, string, error) {
	cfg, said, err := segmentation.Resolve(segmentation.Sources{File: t.ConfigFile, Flags: t.Cfg, Set: t.Settings()})
	return cfg, said, Usage(err)
}

// ResumeOverrides returns the settings (Config keys) the command line set for a resumed run;
// any other flag but those of the process (--resume, --no-bar, --threads, --timeout) is refused
// with a usage error naming it.
func (t *TrainFlags) ResumeOverrides() ([]string, error) {
	var set []string
	t.fs.Visit(func(f *pflag.Flag) {
		switch f.Name {
		case "resume", "no-bar", "threads", "timeout":
		default:
			set = append(set, f.Name)
		}
	})
	keys, err := segmentation.ResumeOverrides(set)
	return keys, Usage(err)
}

// ShowDefaults makes the flags' defaults in the help those of the recipe that --data or
// --dataset selects, and says so; without either they are the VOC recipe's.
func (t *TrainFlags) ShowDefaults(w io.Writer) {
	data, name := "", ""
	if t.fs.Changed("data") {
		data = t.Cfg.Data
	}
	if t.fs.Changed("dataset") {
		name = t.Cfg.Dataset
	}
	base, said := segmentation.DefaultConfig(), ""
	if data != "" || name != "" {
		b, err := segmentation.Defaults(data, name)
		if err != nil {
			fmt.Fprintf(w, "segtrain: %v\n\n", err)
			return
		}
		base, said = b.Config, b.Recognised+b.Recipe+"The defaults below are that recipe's.\n\n"
	}
	t.Cfg = base.WithDefaults()
	t.fs.VisitAll(func(f *pflag.Flag) {
		if t.set[f.Name] && f.Name != "data" && f.Name != "dataset" {
			f.DefValue = f.Value.String()
		}
	})
	fmt.Fprint(w, said)
}

// ApplyThreads sets this process's kernel threads from --threads.
func (t *TrainFlags) ApplyThreads() error {
	if t.Threads < 0 {
		return UsageError{Err: fmt.Errorf("--threads %d: at least 1 (0: every core)", t.Threads)}
	}
	if t.Threads > 0 {
		runtime.GOMAXPROCS(t.Threads)
		kernels.Workers = t.Threads
	}
	return nil
}

// Interrupt sets stop on Ctrl-C, SIGTERM or SIGUSR1 (mpirun forwards it to every rank; Slurm's
// --signal sends it before the time limit), saying so on w; a second signal exits at once
// (status 130). The returned function stops listening.
func Interrupt(stop *atomic.Bool, w io.Writer, prog string) (release func()) {
	signals := make(chan os.Signal, 2)
	signal.Notify(signals, os.Interrupt, syscall.SIGTERM, syscall.SIGUSR1)
	go func() {
		if _, ok := <-signals; !ok {
			return
		}
		stop.Store(true)
		fmt.Fprintf(w, "\n%s: stopping after this step (or skipping the evaluation under way) with a checkpoint (again to quit at once)\n", prog)
		if _, ok := <-signals; ok {
			fmt.Fprintf(w, "%s: quit without a checkpoint\n", prog)
			os.Exit(130)
		}
	}()
	return func() { signal.Stop(signals); close(signals) }
}

// WarnBound warns on w when a rank of a data-parallel job runs one thread on a machine of
// several cores: the launcher bound it to one core.
func WarnBound(w io.Writer, prog string, rank, ranks, threads int) {
	if cores := onlineCPUs(); runtime.GOMAXPROCS(0) == 1 && cores > 1 && threads == 0 {
		fmt.Fprintf(w, "%s: rank %d/%d runs 1 thread on a %d-core machine: the launcher bound it to one core "+
			"(mpirun: --bind-to none, or --map-by slot:PE=<cores per rank>)\n", prog, rank, ranks, cores)
	}
}

// onlineCPUs is the machine's number of cores (runtime.NumCPU is the cores this process may
// use, which a launcher's binding narrows).
func onlineCPUs() int {
	raw, err := os.ReadFile("/sys/devices/system/cpu/online")
	if err != nil {
		return runtime.NumCPU()
	}
	n := 0
	for _, part := range strings.Split(strings.TrimSpace(string(raw)), ",") {
		lo, hi, found := strings.Cut(part, "-")
		a, err1 := strconv.Atoi(lo)
		b := a
		var err2 error
		if found {
			b, err2 = strconv.Atoi(hi)
		}
		if err1 != nil || err2 != nil {
			return runtime.NumCPU()
		}
		n += b - a + 1
	}
	return n
}
