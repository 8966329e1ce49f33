package serve

import (
	"context"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/segkit/segkit/segmentation/infer"
	"github.com/segkit/segkit/voc"
)

// tokenCookie carries the token for the web page, which cannot send a header when the browser
// navigates: GET /?token=T sets it (HttpOnly, SameSite=Strict) and redirects to /.
const tokenCookie = "segkit_token"

func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/v1/segment", s.handleSegment)
	mux.HandleFunc("/v1/model", get(s.handleModel))
	mux.HandleFunc("/healthz", get(s.handleHealth))
	mux.HandleFunc("/readyz", get(s.handleReady))
	mux.HandleFunc("/metrics", get(s.metrics.handler()))
	mux.HandleFunc("/{$}", get(s.handlePage))
	mux.HandleFunc("/static/", get(staticHandler().ServeHTTP))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "no such endpoint: "+r.URL.Path)
	})
	// Counted outermost: refusals (401, CORS preflights) are requests too.
	return s.metrics.instrument(s.cors(s.auth(mux)))
}

// route names a request's handler for the metrics (a fixed set: paths are not labels).
func route(path string) string {
	switch {
	case path == "/v1/segment":
		return "segment"
	case path == "/v1/model":
		return "model"
	case path == "/healthz", path == "/readyz", path == "/metrics":
		return path[1:]
	case path == "/", strings.HasPrefix(path, "/static/"):
		return "page"
	}
	return "other"
}

// get refuses methods other than GET and HEAD.
func get(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			writeError(w, http.StatusMethodNotAllowed, r.Method+" "+r.URL.Path+": use GET")
			return
		}
		h(w, r)
	}
}

// apiError is the body of every error answer.
type apiError struct {
	Error  string `json:"error"`
	Status int    `json:"status"`
}

func writeError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, apiError{msg, code})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}

// auth requires the token (bearer header, or the page's cookie) everywhere but the health
// checks and CORS preflights.
func (s *Server) auth(next http.Handler) http.Handler {
	if s.opt.Token == "" {
		return next
	}
	want := []byte(s.opt.Token)
	ok := func(got string) bool { return subtle.ConstantTimeCompare([]byte(got), want) == 1 }
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == "/healthz" || r.URL.Path == "/readyz" || r.Method == http.MethodOptions:
			next.ServeHTTP(w, r)
			return
		case r.URL.Path == "/" && r.URL.Query().Has("token") && ok(r.URL.Query().Get("token")):
			// The token leaves the address bar (and the history) at once.
			http.SetCookie(w, &http.Cookie{Name: tokenCookie, Value: s.opt.Token, Path: "/", HttpOnly: true,
				SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil})
			http.Redirect(w, r, "/", http.StatusSeeOther)
			return
		}
		if h, found := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); found && ok(strings.TrimSpace(h)) {
			next.ServeHTTP(w, r)
			return
		}
		if c, err := r.Cookie(tokenCookie); err == nil && ok(c.Value) {
			next.ServeHTTP(w, r)
			return
		}
		w.Header().Set("WWW-Authenticate", `Bearer realm="segkit"`)
		writeError(w, http.StatusUnauthorized, "missing or wrong token: send Authorization: Bearer TOKEN (the page: open /?token=TOKEN once)")
	})
}

// cors answers the configured origin's preflights and marks its responses readable; with no
// origin configured, no CORS header is ever sent (browsers then keep other sites out).
func (s *Server) cors(next http.Handler) http.Handler {
	if s.opt.CORS == "" {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		origin := r.Header.Get("Origin")
		if origin != "" && (s.opt.CORS == "*" || origin == s.opt.CORS) {
			h := w.Header()
			h.Set("Access-Control-Allow-Origin", map[bool]string{true: "*", false: origin}[s.opt.CORS == "*"])
			h.Add("Vary", "Origin")
			if r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != "" {
				h.Set("Access-Control-Allow-Methods", "GET, POST, OPTIONS")
				h.Set("Access-Control-Allow-Headers", "Authorization, Content-Type, Accept")
				h.Set("Access-Control-Max-Age", "600")
				w.WriteHeader(http.StatusNoContent)
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

func (s *Server) handleHealth(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

// handleReady is 200 while requests are taken, 503 once draining (shutdown).
func (s *Server) handleReady(w http.ResponseWriter, r *http.Request) {
	if s.draining.Load() {
		writeError(w, http.StatusServiceUnavailable, errClosed.Error())
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"status": "ready", "queued": s.queued.Load()})
}

func (s *Server) handleModel(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Write(s.card)
}

// formats: the outputs and their content types.
var formats = map[string]string{
	"index":   "image/png",
	"color":   "image/png",
	"overlay": "image/jpeg",
	"json":    "application/json",
}

// format is ?format=, or else the first type of Accept that names one (image/png: the index
// PNG, image/jpeg: the overlay); JSON when neither says.
func format(r *http.Request) (string, int, error) {
	if f := r.URL.Query().Get("format"); f != "" {
		if _, ok := formats[f]; !ok {
			return "", http.StatusBadRequest, fmt.Errorf("format %q: index, color, overlay or json", f)
		}
		return f, 0, nil
	}
	accept := r.Header.Get("Accept")
	if accept == "" {
		return "json", 0, nil
	}
	for _, part := range strings.Split(accept, ",") {
		t, _, err := mime.ParseMediaType(strings.TrimSpace(part))
		if err != nil {
			continue
		}
		switch t {
		case "application/json", "*/*", "application/*":
			return "json", 0, nil
		case "image/png", "image/*":
			return "index", 0, nil
		case "image/jpeg":
			return "overlay", 0, nil
		}
	}
	return "", http.StatusNotAcceptable, fmt.Errorf("Accept %q: none of application/json, image/png (class indices), image/jpeg (overlay); or use ?format=", accept)
}

// readImage returns the request's image bytes: the multipart field "image", or the raw body.
func readImage(r *http.Request) ([]byte, error) {
	ct, params, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if ct != "multipart/form-data" {
		return io.ReadAll(r.Body)
	}
	if params["boundary"] == "" {
		return nil, errors.New("multipart body without a boundary")
	}
	mr, err := r.MultipartReader()
	if err != nil {
		return nil, err
	}
	for {
		part, err := mr.NextPart()
		if err == io.EOF {
			return nil, errors.New(`multipart body without an "image" field`)
		}
		if err != nil {
			return nil, err
		}
		if part.FormName() == "image" {
			return io.ReadAll(part)
		}
	}
}

// segmentResponse is the JSON answer.
type segmentResponse struct {
	Width        int          `json:"width"`
	Height       int          `json:"height"`
	Classes      []classShare `json:"classes"`       // present, largest share first
	NetworkInput [2]int       `json:"network_input"` // h, w: the image after the test rescale
	Levels       []level      `json:"levels"`        // every level's size at that input
	BatchSize    int          `json:"batch_size"`    // images run through the network together
	TimingMS     timingMS     `json:"timing_ms"`
	// With ?include=: labels (base64, one byte a pixel, row-major), index and color (base64 PNGs).
	Labels   string `json:"labels,omitempty"`
	IndexPNG string `json:"index_png,omitempty"`
	ColorPNG string `json:"color_png,omitempty"`
}

type classShare struct {
	Class  uint8    `json:"class"`
	Name   string   `json:"name"`
	Color  [3]uint8 `json:"color"`
	Pixels int      `json:"pixels"`
	Share  float64  `json:"share"` // 0–1
}

type timingMS struct {
	Read      float64 `json:"read"`      // body read and image decoded
	Queue     float64 `json:"queue"`     // waiting for the network (and the batch to fill)
	Inference float64 `json:"inference"` // the batch's network run, resizes and argmax
	Encode    float64 `json:"encode"`
	Total     float64 `json:"total"`
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1e3 }

func (s *Server) handleSegment(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		writeError(w, http.StatusMethodNotAllowed, r.Method+" /v1/segment: POST an image")
		return
	}
	if s.draining.Load() {
		w.Header().Set("Connection", "close")
		writeError(w, http.StatusServiceUnavailable, errClosed.Error())
		return
	}
	out, code, err := format(r)
	if err != nil {
		writeError(w, code, err.Error())
		return
	}
	include := map[string]bool{}
	for _, v := range strings.Split(r.URL.Query().Get("include"), ",") {
		switch v {
		case "":
		case "labels", "index", "color":
			include[v] = true
		default:
			writeError(w, http.StatusBadRequest, fmt.Sprintf("include %q: a list of labels, index, color", v))
			return
		}
	}
	opacity := s.opt.Opacity
	if v := r.URL.Query().Get("opacity"); v != "" {
		if opacity, err = strconv.ParseFloat(v, 64); err != nil || opacity < 0 || opacity > 1 {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("opacity %q: between 0 and 1", v))
			return
		}
	}
	s.active.Add(1)
	defer s.active.Add(-1)
	ctx, cancel := context.WithTimeout(r.Context(), s.opt.Timeout)
	defer cancel()

	r.Body = http.MaxBytesReader(w, r.Body, s.opt.MaxBody)
	data, err := readImage(r)
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			w.Header().Set("Connection", "close") // the rest of the body is not read
			writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("request body larger than %d bytes", s.opt.MaxBody))
			return
		}
		writeError(w, http.StatusBadRequest, "reading the request: "+err.Error())
		return
	}
	if len(data) == 0 {
		writeError(w, http.StatusBadRequest, "no image: POST a JPEG or PNG as the body or as the multipart field \"image\"")
		return
	}
	img, err := voc.DecodeImageLimit(data, s.opt.MaxPixels)
	if err != nil {
		code := http.StatusBadRequest
		if errors.Is(err, voc.ErrTooManyPixels) {
			code = http.StatusRequestEntityTooLarge
		}
		writeError(w, code, err.Error())
		return
	}
	read := time.Since(start)

	res, err := s.submit(ctx, img)
	switch {
	case errors.Is(err, errQueueFull):
		w.Header().Set("Retry-After", "1")
		writeError(w, http.StatusServiceUnavailable, err.Error())
		return
	case errors.Is(err, context.DeadlineExceeded):
		writeError(w, http.StatusGatewayTimeout, fmt.Sprintf("no answer within %v", s.opt.Timeout))
		return
	case errors.Is(err, context.Canceled): // the client left
		writeError(w, 499, "request canceled")
		return
	case errors.Is(err, errClosed):
		writeError(w, http.StatusServiceUnavailable, err.Error())
		return
	case err != nil:
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}

	encStart := time.Now()
	outputs := infer.Outputs{Opacity: opacity, Palette: s.p.Palette}
	timing := func() timingMS {
		return timingMS{Read: ms(read), Queue: ms(res.wait), Inference: ms(res.run), Encode: ms(time.Since(encStart)), Total: ms(time.Since(start))}
	}
	if out != "json" {
		body, err := outputs.Encode(out, img, res.labels)
		if err != nil {
			writeError(w, http.StatusInternalServerError, "encoding the "+out+" output: "+err.Error())
			return
		}
		h := w.Header()
		h.Set("Content-Type", formats[out])
		h.Set("Content-Length", strconv.Itoa(len(body)))
		h.Set("X-Batch-Size", strconv.Itoa(res.batch))
		h.Set("X-Inference-Ms", strconv.FormatFloat(ms(res.run), 'f', -1, 64))
		h.Set("Server-Timing", fmt.Sprintf("read;dur=%.1f, queue;dur=%.1f, inference;dur=%.1f", ms(read), ms(res.wait), ms(res.run)))
		w.Write(body)
		return
	}
	resp := segmentResponse{Width: img.W, Height: img.H, BatchSize: res.batch}
	for _, sh := range infer.ClassShares(res.labels, s.p.Classes) {
		resp.Classes = append(resp.Classes, classShare{sh.Class, sh.Name, s.p.Palette.RGB(sh.Class), sh.Pixels, sh.Share})
	}
	w2, h2 := s.p.Inference.Aug.TestSize(img.W, img.H)
	resp.NetworkInput = [2]int{h2, w2}
	resp.Levels = levels(s.p, h2, w2)
	if include["labels"] {
		resp.Labels = base64.StdEncoding.EncodeToString(res.labels)
	}
	for k, dst := range map[string]*string{"index": &resp.IndexPNG, "color": &resp.ColorPNG} {
		if !include[k] {
			continue
		}
		b, err := outputs.Encode(k, img, res.labels)
		if err != nil {
			writeError(w, http.StatusInternalServerError, "encoding the "+k+" output: "+err.Error())
			return
		}
		*dst = base64.StdEncoding.EncodeToString(b)
	}
	resp.TimingMS = timing()
	writeJSON(w, http.StatusOK, resp)
}
