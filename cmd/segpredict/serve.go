package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/segkit/segkit/serve"
)

type serveOptions struct {
	addr, token, cors  string
	batch, queue       int
	maxPixels          int
	maxBody            int64
	batchWait, timeout time.Duration
	grace              time.Duration
	opacity            float64
	model              *modelFlags
}

func newServeCmd() *cobra.Command {
	var o serveOptions
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Serve the model over HTTP: a JSON and image API and a web page",
		Long: `serve answers POST /v1/segment (an image in, the class-index PNG, colour PNG, overlay JPEG or
JSON out), GET /v1/model (the model card), /healthz, /readyz and /metrics (Prometheus), and
serves a web page at /. Concurrent requests for images of one size run through the network
together (up to --batch, waiting at most --batch-wait for them). The model and its test
protocol come from the same flags as segpredict's. It listens on loopback unless --addr says
otherwise; SIGTERM or SIGINT finish the requests in flight, then stop. See docs/serve.md.`,
		Example: `  segpredict serve --checkpoint runs/latest/best.safetensors
  segpredict serve --checkpoint hr48_voc.safetensors --addr 0.0.0.0:8080 --token "$(cat token)"`,
		Args:          cobra.NoArgs,
		SilenceUsage:  true,
		SilenceErrors: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGTERM, os.Interrupt)
			defer stop()
			return runServe(ctx, cmd, o)
		},
	}
	cmd.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{Err: err} })
	f := cmd.Flags()
	f.StringVar(&o.addr, "addr", "127.0.0.1:8080", "address to listen on (loopback by default; another needs --token, or a warning)")
	f.StringVar(&o.token, "token", "", "bearer token required by every endpoint but /healthz and /readyz (default: $SEGKIT_TOKEN)")
	f.StringVar(&o.cors, "cors", "", "origin allowed to call the API from a browser (e.g. https://example.org, or *); none by default")
	f.IntVar(&o.batch, "batch", 4, "images per network run")
	f.DurationVar(&o.batchWait, "batch-wait", 5*time.Millisecond, "longest wait for more images of a batch's size")
	f.IntVar(&o.queue, "queue", 64, "images that may wait for the network; more are refused with 503")
	f.DurationVar(&o.timeout, "timeout", 60*time.Second, "per-request deadline (504 past it)")
	f.Int64Var(&o.maxBody, "max-body", 32<<20, "largest request body, bytes (413 past it)")
	f.IntVar(&o.maxPixels, "max-pixels", 40_000_000, "largest image, pixels, read from its header (413 past it)")
	f.Float64Var(&o.opacity, "opacity", 0.5, "the overlay's default opacity (?opacity= overrides it)")
	f.DurationVar(&o.grace, "grace", 30*time.Second, "on SIGTERM/SIGINT, how long requests in flight may take to finish")
	o.model = addModelFlags(f)
	return cmd
}

// serverOptions checks the flags and makes the server's options.
func (o serveOptions) serverOptions() (serve.Options, error) {
	switch {
	case o.batch < 1:
		return serve.Options{}, fmt.Errorf("--batch %d: at least 1", o.batch)
	case o.queue < 1:
		return serve.Options{}, fmt.Errorf("--queue %d: at least 1", o.queue)
	case o.batchWait < 0 || o.timeout <= 0 || o.grace < 0:
		return serve.Options{}, fmt.Errorf("--batch-wait, --timeout and --grace: positive durations")
	case o.maxBody < 1 || o.maxPixels < 1:
		return serve.Options{}, fmt.Errorf("--max-body and --max-pixels: positive")
	case o.opacity < 0 || o.opacity > 1:
		return serve.Options{}, fmt.Errorf("--opacity %g: between 0 and 1", o.opacity)
	}
	wait := o.batchWait
	if wait == 0 {
		wait = -1 // serve.Options: 0 is the default, negative none
	}
	return serve.Options{MaxBody: o.maxBody, MaxPixels: o.maxPixels, Batch: o.batch, BatchWait: wait, Queue: o.queue,
		Timeout: o.timeout, Token: o.token, CORS: o.cors, Opacity: o.opacity, Checkpoint: o.model.checkpoint}, nil
}

// newServer loads the model as segpredict does and makes the server.
func newServer(o serveOptions) (*serve.Server, error) {
	opt, err := o.serverOptions()
	if err != nil {
		return nil, usageError{Err: err}
	}
	p, err := o.model.load()
	if err != nil {
		return nil, err
	}
	return serve.New(p, opt)
}

func runServe(ctx context.Context, cmd *cobra.Command, o serveOptions) error {
	if o.token == "" {
		o.token = os.Getenv("SEGKIT_TOKEN")
	}
	if _, _, err := net.SplitHostPort(o.addr); err != nil {
		return usageError{Err: fmt.Errorf("--addr %q: %w", o.addr, err)}
	}
	stderr := cmd.ErrOrStderr()
	s, err := newServer(o)
	if err != nil {
		return err
	}
	l, err := net.Listen("tcp", o.addr)
	if err != nil {
		s.Close()
		return err
	}
	if !loopback(l.Addr()) && o.token == "" {
		fmt.Fprintf(stderr, "segpredict serve: warning: listening on %s, beyond this machine, with no --token: anyone who reaches it can use the model\n", l.Addr())
	}
	fmt.Fprintf(cmd.OutOrStdout(), "segpredict serve: http://%s/ (batch %d, queue %d; SIGTERM or Ctrl-C stops)\n", l.Addr(), o.batch, o.queue)
	err = serve.Serve(ctx, l, s, o.grace)
	fmt.Fprintln(cmd.OutOrStdout(), "segpredict serve: stopped")
	return err
}

// loopback reports whether a listening address is reachable from this machine only.
func loopback(a net.Addr) bool {
	t, ok := a.(*net.TCPAddr)
	return ok && t.IP.IsLoopback()
}
