package serve

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// metrics are the server's Prometheus metrics, on a registry of its own (servers in one
// process, as in the tests, do not collide).
type metrics struct {
	reg       *prometheus.Registry
	requests  *prometheus.CounterVec
	latency   *prometheus.HistogramVec
	batches   prometheus.Histogram
	inference prometheus.Histogram
}

func newMetrics(s *Server) *metrics {
	m := &metrics{reg: prometheus.NewRegistry()}
	m.requests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "segkit_http_requests_total", Help: "HTTP requests answered, by handler and status code.",
	}, []string{"handler", "code"})
	m.latency = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "segkit_http_request_duration_seconds", Help: "Time from a request's arrival to its answer, by handler.",
		Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60},
	}, []string{"handler"})
	sizes := make([]float64, 0, s.opt.Batch)
	for n := 1; n <= s.opt.Batch; n++ {
		sizes = append(sizes, float64(n))
	}
	m.batches = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "segkit_batch_size", Help: "Images per network run.", Buckets: sizes,
	})
	m.inference = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "segkit_inference_duration_seconds", Help: "Time of one batch's inference (network, resizes, argmax).",
		Buckets: prometheus.ExponentialBuckets(0.005, 2, 14),
	})
	m.reg.MustRegister(m.requests, m.latency, m.batches, m.inference,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "segkit_queue_depth", Help: "Images waiting for the network.",
		}, func() float64 { return float64(s.queued.Load()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "segkit_queue_capacity", Help: "Images that may wait before requests are refused with 503.",
		}, func() float64 { return float64(s.opt.Queue) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "segkit_segment_requests_in_flight", Help: "Segment requests being read, queued, run or encoded.",
		}, func() float64 { return float64(s.active.Load()) }),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return m
}

func (m *metrics) handler() http.HandlerFunc {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{}).ServeHTTP
}

// batch records one network run.
func (m *metrics) batch(n int, took time.Duration) {
	m.batches.Observe(float64(n))
	m.inference.Observe(took.Seconds())
}

// instrument counts the answers by route and status, and times them.
func (m *metrics) instrument(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &statusWriter{ResponseWriter: w, code: http.StatusOK}
		h.ServeHTTP(rec, r)
		name := route(r.URL.Path)
		m.requests.WithLabelValues(name, strconv.Itoa(rec.code)).Inc()
		m.latency.WithLabelValues(name).Observe(time.Since(start).Seconds())
	})
}

type statusWriter struct {
	http.ResponseWriter
	code  int
	wrote bool
}

func (w *statusWriter) WriteHeader(code int) {
	if !w.wrote {
		w.code, w.wrote = code, true
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	w.wrote = true
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController (and MaxBytesReader's close) reach the connection.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
