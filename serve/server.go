// Package serve serves a segmentation model over HTTP: a JSON and image API (docs/serve.md), a
// web page, health checks and Prometheus metrics. Concurrent requests for images of one size
// are batched through the network; a bounded queue and a per-request deadline keep it
// responsive under load.
package serve

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/segkit/segkit/segmentation/infer"
	"github.com/segkit/segkit/voc"
)

// Options configure a Server; zero values take the defaults.
type Options struct {
	MaxBody   int64         // bytes of a request body (default 32 MiB)
	MaxPixels int           // pixels of an image, checked on its header (default 40 M; at most voc.MaxPixels)
	Batch     int           // images per network run (default 4)
	BatchWait time.Duration // how long a batch waits for more images of its size (default 5 ms; negative: none)
	Queue     int           // images waiting for the network (default 64); beyond it, 503
	Timeout   time.Duration // per request, from arrival to the answer (default 60 s); beyond it, 504
	Token     string        // bearer token required by everything but /healthz and /readyz ("": none)
	CORS      string        // the origin allowed to call the API from a browser ("": none; "*": any)
	Opacity   float64       // the overlay's default opacity (default 0.5, as segpredict's)
	// Checkpoint names the model's file on the model card.
	Checkpoint string
	// Logf reports what the server does not answer for (a failed response write); nil: nothing.
	Logf func(format string, args ...any)
}

func (o Options) withDefaults() Options {
	if o.MaxBody <= 0 {
		o.MaxBody = 32 << 20
	}
	if o.MaxPixels <= 0 {
		o.MaxPixels = 40_000_000
	}
	o.MaxPixels = min(o.MaxPixels, voc.MaxPixels)
	if o.Batch <= 0 {
		o.Batch = 4
	}
	if o.BatchWait == 0 {
		o.BatchWait = 5 * time.Millisecond
	}
	o.BatchWait = max(o.BatchWait, 0)
	if o.Queue <= 0 {
		o.Queue = 64
	}
	if o.Timeout <= 0 {
		o.Timeout = 60 * time.Second
	}
	if o.Opacity == 0 {
		o.Opacity = 0.5
	}
	if o.Logf == nil {
		o.Logf = func(string, ...any) {}
	}
	return o
}

// Server is the http.Handler. One goroutine owns the network (a Net runs one graph at a time);
// request goroutines decode and encode in parallel around it.
type Server struct {
	p         *infer.Predictor
	opt       Options
	card      []byte // GET /v1/model, computed once
	classes   []classInfo
	jobs      chan *job
	queued    atomic.Int64 // jobs accepted and not yet running
	active    atomic.Int64 // segment requests between reading the body and answering
	draining  atomic.Bool
	stop      chan struct{}
	stopOnce  sync.Once
	done      chan struct{} // the worker has returned
	metrics   *metrics
	handler   http.Handler
	beforeRun func(n int) // newServer's

}

// job is one image waiting for the network.
type job struct {
	ctx    context.Context
	img    voc.RGB
	queued time.Time
	res    chan result // buffered: the worker never blocks on a handler that gave up
}

type result struct {
	labels    []uint8
	err       error
	batch     int
	wait, run time.Duration
}

// New returns a server for p, with its worker running; it builds the network's graph at the
// checkpoint's test size (the model card's GMACs need it, and the first request is not slowed).
// p must not be used elsewhere while the server runs.
func New(p *infer.Predictor, opt Options) (*Server, error) { return newServer(p, opt, nil) }

// newServer is New with a hook called with each batch before it runs (tests).
func newServer(p *infer.Predictor, opt Options, beforeRun func(n int)) (*Server, error) {
	if opt.Opacity < 0 || opt.Opacity > 1 {
		return nil, fmt.Errorf("opacity %g: between 0 and 1", opt.Opacity)
	}
	s := &Server{p: p, opt: opt.withDefaults(), stop: make(chan struct{}), done: make(chan struct{}), beforeRun: beforeRun}
	s.jobs = make(chan *job, s.opt.Queue)
	var err error
	if s.card, s.classes, err = modelCard(p, s.opt); err != nil {
		return nil, err
	}
	s.metrics = newMetrics(s)
	s.handler = s.routes()
	go s.work()
	return s, nil
}

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.handler.ServeHTTP(w, r) }

// Drain makes /readyz and new segment requests answer 503 (a load balancer takes the server
// out); requests already accepted are finished.
func (s *Server) Drain() { s.draining.Store(true) }

// Close stops the worker once the batch it runs is done; requests still queued then answer 503.
// Call it after http.Server.Shutdown has waited for the handlers.
func (s *Server) Close() {
	s.Drain()
	s.stopOnce.Do(func() { close(s.stop) })
	<-s.done
}

var errClosed = errors.New("the server is shutting down")

// submit queues img and waits for its labels, at most until ctx is done.
func (s *Server) submit(ctx context.Context, img voc.RGB) (result, error) {
	if s.queued.Add(1) > int64(s.opt.Queue) {
		s.queued.Add(-1)
		return result{}, errQueueFull
	}
	j := &job{ctx: ctx, img: img, queued: time.Now(), res: make(chan result, 1)}
	select {
	case s.jobs <- j: // never blocks: the channel holds Queue jobs and queued bounds them
	case <-s.stop:
		s.queued.Add(-1)
		return result{}, errClosed
	}
	select {
	case r := <-j.res:
		return r, r.err
	case <-ctx.Done():
		return result{}, ctx.Err()
	case <-s.done:
		return result{}, errClosed
	}
}

var errQueueFull = errors.New("the queue is full: retry later")

// work runs batches until Close: it takes the oldest waiting image, then waits up to BatchWait
// for more of its size (only while other requests are on their way: a lone request does not
// wait), up to Batch. Images of another size wait in pending for a later batch, oldest first.
func (s *Server) work() {
	defer close(s.done)
	var pending []*job
	for {
		var first *job
		if len(pending) > 0 {
			first, pending = pending[0], pending[1:]
		} else {
			select {
			case first = <-s.jobs:
			case <-s.stop:
				return
			}
		}
		same := func(j *job) bool { return j.img.W == first.img.W && j.img.H == first.img.H }
		batch := []*job{first}
		kept := pending[:0]
		for _, j := range pending {
			if len(batch) < s.opt.Batch && same(j) {
				batch = append(batch, j)
			} else {
				kept = append(kept, j)
			}
		}
		pending = kept
		deadline := time.NewTimer(s.opt.BatchWait)
	fill:
		for len(batch) < s.opt.Batch {
			select {
			case j := <-s.jobs:
				if same(j) {
					batch = append(batch, j)
				} else {
					pending = append(pending, j)
				}
				continue
			default:
			}
			// Nobody else is reading or decoding an image: nothing will join.
			if s.active.Load() <= int64(len(batch)+len(pending)) {
				break
			}
			select {
			case j := <-s.jobs:
				if same(j) {
					batch = append(batch, j)
				} else {
					pending = append(pending, j)
				}
			case <-deadline.C:
				break fill
			case <-s.stop:
				break fill
			}
		}
		deadline.Stop()
		s.run(batch)
	}
}

// run segments a batch; images whose request has given up (deadline, client gone) are left out.
func (s *Server) run(batch []*job) {
	s.queued.Add(-int64(len(batch)))
	live := batch[:0]
	for _, j := range batch {
		if j.ctx.Err() == nil {
			live = append(live, j)
		}
	}
	if len(live) == 0 {
		return
	}
	if s.beforeRun != nil {
		s.beforeRun(len(live))
	}
	imgs := make([]voc.RGB, len(live))
	for i, j := range live {
		imgs[i] = j.img
	}
	start := time.Now()
	labels, err := s.segment(imgs)
	took := time.Since(start)
	s.metrics.batch(len(live), took)
	for i, j := range live {
		r := result{err: err, batch: len(live), wait: start.Sub(j.queued), run: took}
		if err == nil {
			r.labels = labels[i]
		}
		j.res <- r
	}
}

// segment runs the network; a panic in it fails this batch, not the server.
func (s *Server) segment(imgs []voc.RGB) (labels [][]uint8, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("inference failed: %v", r)
		}
	}()
	return s.p.SegmentBatch(imgs)
}
