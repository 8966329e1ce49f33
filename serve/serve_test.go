package serve

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"hash/crc32"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"io"
	"mime/multipart"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/segkit/segkit/segmentation"
	"github.com/segkit/segkit/segmentation/checkpoint"
	"github.com/segkit/segkit/segmentation/infer"
	"github.com/segkit/segkit/segmentation/train"
	"github.com/segkit/segkit/voc"
)

var (
	ckptOnce sync.Once
	ckptPath string
	ckptErr  error
	ckptDir  string
)

func TestMain(m *testing.M) {
	code := m.Run()
	if ckptDir != "" {
		os.RemoveAll(ckptDir)
	}
	os.Exit(code)
}

// trainedCheckpoint trains the tiny DynOPool model once for the package's tests (a few seconds), as
// segpredict's tests make theirs.
func trainedCheckpoint(t testing.TB) string {
	t.Helper()
	ckptOnce.Do(func() {
		if ckptDir, ckptErr = os.MkdirTemp("", "segkit-serve-test-"); ckptErr != nil {
			return
		}
		c := segmentation.DemoConfig()
		c.Crop, c.Batch, c.Iters, c.DemoImages, c.EvalEvery, c.CkptEvery = 32, 2, 2, 20, 0, 0
		c.Out, c.Name = ckptDir, "run"
		var sum train.Summary
		if sum, ckptErr = (&train.Run{Cfg: c, Out: io.Discard, NoBar: true}).Train(); ckptErr == nil {
			ckptPath = filepath.Join(sum.Dir, "best.safetensors")
		}
	})
	if ckptErr != nil {
		t.Fatal(ckptErr)
	}
	return ckptPath
}

func predictor(t testing.TB) *infer.Predictor {
	t.Helper()
	p, err := infer.NewPredictor(trainedCheckpoint(t), checkpoint.ImportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// start serves a fresh predictor with opt through httptest.
func start(t testing.TB, opt Options, beforeRun func(int)) (*Server, *httptest.Server) {
	t.Helper()
	s, err := newServer(predictor(t), opt, beforeRun)
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(s)
	t.Cleanup(func() {
		ts.Close()
		s.Close()
	})
	return s, ts
}

// testPNG is a w×h PNG with a pattern that varies with seed.
func testPNG(w, h, seed int) []byte {
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			img.Set(x, y, color.RGBA{uint8(x*7 + seed*31), uint8(y*5 + x*y), uint8((x + y + seed) * 3), 255})
		}
	}
	var buf bytes.Buffer
	png.Encode(&buf, img)
	return buf.Bytes()
}

type answer struct {
	code int
	head http.Header
	body []byte
}

func (a answer) json(t testing.TB, v any) {
	t.Helper()
	if err := json.Unmarshal(a.body, v); err != nil {
		t.Fatalf("%v: %s", err, a.body)
	}
}

// apiErr reads an error answer and checks its shape.
func (a answer) apiErr(t testing.TB) apiError {
	t.Helper()
	var e apiError
	a.json(t, &e)
	if e.Status != a.code || e.Error == "" || a.head.Get("Content-Type") != "application/json" {
		t.Errorf("error answer %d %q: %s", a.code, a.head.Get("Content-Type"), a.body)
	}
	return e
}

func do(t testing.TB, method, url string, body []byte, header ...string) answer {
	t.Helper()
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return answer{resp.StatusCode, resp.Header, b}
}

// Every format, by ?format= and by Accept, and the multipart upload: the bytes are those of
// segpredict's outputs (Outputs.Encode on the labels of Segment), the JSON describes them.
func TestSegmentFormats(t *testing.T) {
	_, ts := start(t, Options{}, nil)
	ref := predictor(t)
	data := testPNG(45, 31, 1)
	img, _ := voc.DecodeImage(data)
	labels, err := ref.Segment(img)
	if err != nil {
		t.Fatal(err)
	}
	outs := infer.Outputs{Opacity: 0.5, Palette: ref.Palette}
	want := map[string][]byte{}
	for _, k := range []string{"index", "color", "overlay"} {
		if want[k], err = outs.Encode(k, img, labels); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []struct {
		query, accept, format, ctype string
	}{
		{"?format=index", "", "index", "image/png"},
		{"?format=color", "", "color", "image/png"},
		{"?format=overlay", "", "overlay", "image/jpeg"},
		{"", "image/png", "index", "image/png"},
		{"", "text/html;q=0.9, image/jpeg", "overlay", "image/jpeg"},
		{"?format=color", "application/json", "color", "image/png"}, // the query wins
	} {
		a := do(t, "POST", ts.URL+"/v1/segment"+c.query, data, "Accept", c.accept)
		if a.code != 200 || a.head.Get("Content-Type") != c.ctype || !bytes.Equal(a.body, want[c.format]) {
			t.Errorf("%s Accept %q: %d %s, %d bytes; want the %s output bit for bit", c.query, c.accept, a.code,
				a.head.Get("Content-Type"), len(a.body), c.format)
		}
		if a.head.Get("X-Batch-Size") != "1" {
			t.Errorf("%s: X-Batch-Size %q", c.query, a.head.Get("X-Batch-Size"))
		}
	}
	if a := do(t, "POST", ts.URL+"/v1/segment?format=overlay&opacity=1", data); a.code != 200 || bytes.Equal(a.body, want["overlay"]) {
		t.Errorf("opacity=1: %d, same bytes as 0.5: %v", a.code, bytes.Equal(a.body, want["overlay"]))
	}

	// JSON: by default, and with everything included; the multipart field "image".
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	mw.WriteField("note", "ignored")
	fw, _ := mw.CreateFormFile("image", "a.png")
	fw.Write(data)
	mw.Close()
	a := do(t, "POST", ts.URL+"/v1/segment?include=labels,index,color", body.Bytes(), "Content-Type", mw.FormDataContentType())
	var r segmentResponse
	a.json(t, &r)
	if a.code != 200 || r.Width != 45 || r.Height != 31 || r.BatchSize != 1 || len(r.Levels) != 6 {
		t.Fatalf("JSON: %d %s", a.code, a.body)
	}
	got, _ := base64.StdEncoding.DecodeString(r.Labels)
	idx, _ := base64.StdEncoding.DecodeString(r.IndexPNG)
	col, _ := base64.StdEncoding.DecodeString(r.ColorPNG)
	if !slices.Equal(got, labels) || !bytes.Equal(idx, want["index"]) || !bytes.Equal(col, want["color"]) {
		t.Error("JSON: labels, index or colour PNG differ from segpredict's")
	}
	total, pixels := 0.0, 0
	for i, c := range r.Classes {
		total += c.Share
		pixels += c.Pixels
		if c.Color != ref.Palette.RGB(c.Class) || c.Name != ref.Classes[c.Class] || (i > 0 && c.Pixels > r.Classes[i-1].Pixels) {
			t.Errorf("class entry %+v", c)
		}
	}
	if pixels != 45*31 || total < 0.999 || total > 1.001 {
		t.Errorf("shares: %d pixels, sum %g", pixels, total)
	}
	if w, h := ref.Inference.Aug.TestSize(45, 31); r.NetworkInput != [2]int{h, w} || r.Levels[0].Size != [2]int{h, w} {
		t.Errorf("network input %v, levels %v", r.NetworkInput, r.Levels)
	}
	if r.TimingMS.Total <= 0 || r.TimingMS.Inference <= 0 {
		t.Errorf("timing %+v", r.TimingMS)
	}
	if a := do(t, "POST", ts.URL+"/v1/segment", data, "Accept", "*/*"); a.code != 200 || a.head.Get("Content-Type") != "application/json" {
		t.Errorf("Accept */*: %d %s", a.code, a.head.Get("Content-Type"))
	}
}

// The model card: classes with colours, the protocol, DynOPool's levels and alphas, GMACs.
func TestModelCard(t *testing.T) {
	s, ts := start(t, Options{Checkpoint: "/some/dir/best.safetensors", Batch: 3}, nil)
	a := do(t, "GET", ts.URL+"/v1/model", nil)
	var c card
	a.json(t, &c)
	p := s.p
	if a.code != 200 || c.Config != p.Model.Name || c.Resize != "dynopool" || c.Checkpoint != "best.safetensors" || len(c.Classes) != len(p.Classes) {
		t.Fatalf("%d %s", a.code, a.body)
	}
	for i, cl := range c.Classes {
		if cl.Class != i || cl.Name != p.Classes[i] || cl.Color != p.Palette.RGB(uint8(i)) {
			t.Errorf("class %d: %+v", i, cl)
		}
	}
	if len(c.Levels) != 6 || c.Levels[0].Size != c.TestSize || len(c.Alphas) != 4 || c.GMACs <= 0 || c.Params <= 0 {
		t.Errorf("levels %v, test size %v, alphas %v, GMACs %g, params %d", c.Levels, c.TestSize, c.Alphas, c.GMACs, c.Params)
	}
	if c.Protocol.Mode != "whole" || c.Protocol.Scale != p.Inference.Aug.Scale || c.Serving.Batch != 3 || c.Serving.Queue != 64 {
		t.Errorf("protocol %+v, serving %+v", c.Protocol, c.Serving)
	}
	a = do(t, "POST", ts.URL+"/v1/model", nil)
	if a.code != 405 || a.head.Get("Allow") != "GET, HEAD" {
		t.Errorf("POST /v1/model: %d", a.code)
	}
	a.apiErr(t)
}

// healthz, readyz (503 once draining, as new segment requests), metrics in Prometheus' format.
func TestHealthReadyMetrics(t *testing.T) {
	s, ts := start(t, Options{}, nil)
	if a := do(t, "GET", ts.URL+"/healthz", nil); a.code != 200 {
		t.Errorf("healthz %d", a.code)
	}
	if a := do(t, "GET", ts.URL+"/readyz", nil); a.code != 200 {
		t.Errorf("readyz %d", a.code)
	}
	do(t, "POST", ts.URL+"/v1/segment?format=index", testPNG(20, 20, 0))
	do(t, "POST", ts.URL+"/v1/segment", []byte("nope"))
	a := do(t, "GET", ts.URL+"/metrics", nil)
	for _, want := range []string{
		`segkit_http_requests_total{code="200",handler="segment"} 1`,
		`segkit_http_requests_total{code="400",handler="segment"} 1`,
		`segkit_http_requests_total{code="200",handler="healthz"} 1`,
		`segkit_http_request_duration_seconds_bucket{handler="segment",le="60"} 2`,
		`segkit_batch_size_bucket{le="1"} 1`,
		"segkit_batch_size_count 1",
		"segkit_inference_duration_seconds_count 1",
		"segkit_queue_depth 0",
		"segkit_queue_capacity 64",
		"segkit_segment_requests_in_flight 0",
		"process_resident_memory_bytes",
		"go_goroutines",
	} {
		if !strings.Contains(string(a.body), want+"\n") && !strings.Contains(string(a.body), want+" ") {
			t.Errorf("metrics lack %q", want)
		}
	}
	if !strings.HasPrefix(a.head.Get("Content-Type"), "text/plain") {
		t.Errorf("metrics Content-Type %q", a.head.Get("Content-Type"))
	}
	s.Drain()
	if a := do(t, "GET", ts.URL+"/readyz", nil); a.code != 503 {
		t.Errorf("draining: readyz %d", a.code)
	}
	if a := do(t, "POST", ts.URL+"/v1/segment", testPNG(20, 20, 0)); a.code != 503 {
		t.Errorf("draining: segment %d", a.code)
	}
	if a := do(t, "GET", ts.URL+"/healthz", nil); a.code != 200 {
		t.Errorf("draining: healthz %d (the process is alive)", a.code)
	}
}

// pngHeader is a valid PNG signature and IHDR declaring w×h, and no pixels.
func pngHeader(w, h uint32) []byte {
	b := append([]byte("\x89PNG\r\n\x1a\n"), 0, 0, 0, 13)
	ihdr := append([]byte("IHDR"), make([]byte, 13)...)
	binary.BigEndian.PutUint32(ihdr[4:], w)
	binary.BigEndian.PutUint32(ihdr[8:], h)
	ihdr[12], ihdr[13] = 8, 2 // 8-bit RGB
	b = append(b, ihdr...)
	return binary.BigEndian.AppendUint32(b, crc32.ChecksumIEEE(ihdr))
}

func testJPEG(w, h int) []byte {
	var buf bytes.Buffer
	img, _ := png.Decode(bytes.NewReader(testPNG(w, h, 2)))
	jpeg.Encode(&buf, img, nil)
	return buf.Bytes()
}

// Bad requests are answered with the reason and the server keeps serving.
func TestErrors(t *testing.T) {
	_, ts := start(t, Options{MaxBody: 64 << 10, MaxPixels: 100 * 100}, nil)
	good := testPNG(30, 20, 3)
	jpg := testJPEG(40, 30)
	for _, c := range []struct {
		name, method, path string
		body               []byte
		header             []string
		code               int
		msg                string
	}{
		{"GET segment", "GET", "/v1/segment", nil, nil, 405, "POST an image"},
		{"bad format", "POST", "/v1/segment?format=gif", good, nil, 400, `format "gif"`},
		{"bad include", "POST", "/v1/segment?include=overlay", good, nil, 400, `include "overlay"`},
		{"bad opacity", "POST", "/v1/segment?format=overlay&opacity=2", good, nil, 400, `opacity "2"`},
		{"unacceptable", "POST", "/v1/segment", good, []string{"Accept", "text/html"}, 406, "Accept"},
		{"empty body", "POST", "/v1/segment", nil, nil, 400, "no image"},
		{"not an image", "POST", "/v1/segment", []byte("GIF? no, plain text"), nil, 400, "not a readable image: image: unknown format"},
		{"truncated JPEG", "POST", "/v1/segment", jpg[:len(jpg)/2], nil, 400, "not a readable image"},
		{"truncated PNG", "POST", "/v1/segment", good[:len(good)-30], nil, 400, "not a readable image"},
		{"30000×30000 header", "POST", "/v1/segment", pngHeader(30000, 30000), nil, 413, "30000×30000 is not usable: too many pixels"},
		{"over --max-pixels", "POST", "/v1/segment", testPNG(101, 100, 0), nil, 413, "too many pixels (10100, more than 10000)"},
		{"oversized body", "POST", "/v1/segment", make([]byte, 65<<10), nil, 413, "request body larger than 65536 bytes"},
		{"multipart without image", "POST", "/v1/segment", []byte("--b\r\nContent-Disposition: form-data; name=\"x\"\r\n\r\n1\r\n--b--\r\n"),
			[]string{"Content-Type", "multipart/form-data; boundary=b"}, 400, `without an "image" field`},
		{"unknown path", "GET", "/v2/anything", nil, nil, 404, "no such endpoint"},
	} {
		a := do(t, c.method, ts.URL+c.path, c.body, c.header...)
		if a.code != c.code {
			t.Errorf("%s: %d, want %d: %s", c.name, a.code, c.code, a.body)
			continue
		}
		if e := a.apiErr(t); !strings.Contains(e.Error, c.msg) {
			t.Errorf("%s: %q does not say %q", c.name, e.Error, c.msg)
		}
		if a := do(t, "POST", ts.URL+"/v1/segment?format=index", good); a.code != 200 {
			t.Fatalf("after %s: a good image answered %d", c.name, a.code)
		}
	}
	if a := do(t, "POST", ts.URL+"/v1/segment?format=index", jpg); a.code != 200 {
		t.Errorf("the whole JPEG: %d %s", a.code, a.body)
	}
}

// A token guards everything but the health checks; the page takes it once as ?token= and then
// from its cookie.
func TestToken(t *testing.T) {
	_, ts := start(t, Options{Token: "s3cret"}, nil)
	for _, path := range []string{"/", "/static/app.js", "/v1/model", "/metrics", "/nothing"} {
		if a := do(t, "GET", ts.URL+path, nil); a.code != 401 || a.head.Get("WWW-Authenticate") == "" {
			t.Errorf("GET %s without the token: %d", path, a.code)
		} else {
			a.apiErr(t)
		}
		if a := do(t, "GET", ts.URL+path, nil, "Authorization", "Bearer wrong"); a.code != 401 {
			t.Errorf("GET %s with a wrong token: %d", path, a.code)
		}
	}
	if a := do(t, "POST", ts.URL+"/v1/segment", testPNG(20, 20, 0)); a.code != 401 {
		t.Errorf("segment without the token: %d", a.code)
	}
	for _, path := range []string{"/healthz", "/readyz"} {
		if a := do(t, "GET", ts.URL+path, nil); a.code != 200 {
			t.Errorf("%s without the token: %d", path, a.code)
		}
	}
	if a := do(t, "GET", ts.URL+"/v1/model", nil, "Authorization", "Bearer s3cret"); a.code != 200 {
		t.Errorf("with the token: %d", a.code)
	}
	if a := do(t, "POST", ts.URL+"/v1/segment?format=index", testPNG(20, 20, 0), "Authorization", "Bearer s3cret"); a.code != 200 {
		t.Errorf("segment with the token: %d", a.code)
	}
	// The page: ?token= sets the cookie and leaves the address.
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := noRedirect.Get(ts.URL + "/?token=s3cret")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	cookies := resp.Cookies()
	if resp.StatusCode != 303 || resp.Header.Get("Location") != "/" || len(cookies) != 1 || !cookies[0].HttpOnly ||
		cookies[0].SameSite != http.SameSiteStrictMode {
		t.Fatalf("/?token=: %d, Location %q, cookies %v", resp.StatusCode, resp.Header.Get("Location"), cookies)
	}
	if resp, _ := noRedirect.Get(ts.URL + "/?token=wrong"); resp.StatusCode != 401 {
		t.Errorf("/?token=wrong: %d", resp.StatusCode)
	}
	if a := do(t, "GET", ts.URL+"/v1/model", nil, "Cookie", cookies[0].Name+"="+cookies[0].Value); a.code != 200 {
		t.Errorf("with the cookie: %d", a.code)
	}
}

// No CORS header unless an origin is configured; then that origin only, with preflights.
func TestCORS(t *testing.T) {
	_, plain := start(t, Options{}, nil)
	a := do(t, "GET", plain.URL+"/v1/model", nil, "Origin", "https://evil.example")
	if a.head.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("no --cors, yet Access-Control-Allow-Origin %q", a.head.Get("Access-Control-Allow-Origin"))
	}
	if a := do(t, "OPTIONS", plain.URL+"/v1/segment", nil, "Origin", "https://evil.example", "Access-Control-Request-Method", "POST"); a.code != 405 ||
		a.head.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("no --cors: preflight %d", a.code)
	}
	_, ts := start(t, Options{CORS: "https://app.example", Token: "t"}, nil)
	a = do(t, "OPTIONS", ts.URL+"/v1/segment", nil, "Origin", "https://app.example", "Access-Control-Request-Method", "POST")
	if a.code != 204 || a.head.Get("Access-Control-Allow-Origin") != "https://app.example" ||
		!strings.Contains(a.head.Get("Access-Control-Allow-Headers"), "Authorization") {
		t.Errorf("preflight: %d %v", a.code, a.head)
	}
	a = do(t, "GET", ts.URL+"/v1/model", nil, "Origin", "https://app.example", "Authorization", "Bearer t")
	if a.code != 200 || a.head.Get("Access-Control-Allow-Origin") != "https://app.example" {
		t.Errorf("allowed origin: %d %q", a.code, a.head.Get("Access-Control-Allow-Origin"))
	}
	a = do(t, "GET", ts.URL+"/v1/model", nil, "Origin", "https://evil.example", "Authorization", "Bearer t")
	if a.head.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("other origin: Access-Control-Allow-Origin %q", a.head.Get("Access-Control-Allow-Origin"))
	}
}

// gate holds the worker in its hook: the first batch blocks until release, so that the
// requests sent meanwhile are all queued when it goes on.
type gate struct {
	mu      sync.Mutex
	sizes   []int
	entered chan struct{}
	release chan struct{}
}

func newGate() *gate { return &gate{entered: make(chan struct{}, 100), release: make(chan struct{})} }

func (g *gate) hook(n int) {
	g.mu.Lock()
	g.sizes = append(g.sizes, n)
	first := len(g.sizes) == 1
	g.mu.Unlock()
	g.entered <- struct{}{}
	if first {
		<-g.release
	}
}

func (g *gate) batches() []int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return slices.Clone(g.sizes)
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); !cond(); time.Sleep(2 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// Requests queued together run as batches of one size each (up to Batch), and every image gets
// exactly the labels it gets alone.
func TestBatching(t *testing.T) {
	g := newGate()
	s, ts := start(t, Options{Batch: 3, BatchWait: time.Second}, g.hook)
	blocker := make(chan answer, 1)
	go func() { blocker <- do(t, "POST", ts.URL+"/v1/segment?format=index", testPNG(16, 16, 9)) }()
	<-g.entered // the worker holds the blocker's batch
	type sent struct {
		data []byte
		w, h int
	}
	var reqs []sent
	for i := 0; i < 4; i++ { // 4 of 33×27: a batch of 3, then one
		reqs = append(reqs, sent{testPNG(33, 27, i), 33, 27})
	}
	for i := 0; i < 2; i++ { // 2 of 27×33
		reqs = append(reqs, sent{testPNG(27, 33, 10+i), 27, 33})
	}
	answers := make([]answer, len(reqs))
	var wg sync.WaitGroup
	for i, r := range reqs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			answers[i] = do(t, "POST", ts.URL+"/v1/segment?format=json&include=labels", r.data)
		}()
	}
	waitFor(t, "6 queued requests", func() bool { return s.queued.Load() == 6 })
	close(g.release)
	wg.Wait()
	if a := <-blocker; a.code != 200 {
		t.Fatalf("blocker: %d", a.code)
	}
	ref := predictor(t)
	sizes := map[int]int{}
	for i, a := range answers {
		var r segmentResponse
		a.json(t, &r)
		if a.code != 200 {
			t.Fatalf("request %d: %d %s", i, a.code, a.body)
		}
		sizes[r.BatchSize]++
		img, _ := voc.DecodeImage(reqs[i].data)
		want, _ := ref.Segment(img)
		got, _ := base64.StdEncoding.DecodeString(r.Labels)
		if !slices.Equal(got, want) {
			t.Errorf("request %d (batch of %d): labels differ from the image segmented alone", i, r.BatchSize)
		}
	}
	b := g.batches()
	slices.Sort(b[1:])
	if !slices.Equal(b, []int{1, 1, 2, 3}) || sizes[3] != 3 || sizes[2] != 2 || sizes[1] != 1 {
		t.Errorf("batches %v (first: the blocker), answers by batch size %v", b, sizes)
	}
	m := do(t, "GET", ts.URL+"/metrics", nil)
	if !strings.Contains(string(m.body), "segkit_batch_size_sum 7\n") {
		t.Errorf("metrics: batch sizes do not sum to 7")
	}
}

// A full queue answers 503 with Retry-After; the queued requests are answered once it moves.
func TestQueueFull(t *testing.T) {
	g := newGate()
	s, ts := start(t, Options{Batch: 1, Queue: 2}, g.hook)
	blocker := make(chan answer, 1)
	go func() { blocker <- do(t, "POST", ts.URL+"/v1/segment?format=index", testPNG(16, 16, 1)) }()
	<-g.entered
	queued := make(chan answer, 2)
	for i := 0; i < 2; i++ {
		go func() { queued <- do(t, "POST", ts.URL+"/v1/segment?format=index", testPNG(16, 16, 2+i)) }()
	}
	waitFor(t, "2 queued requests", func() bool { return s.queued.Load() == 2 })
	a := do(t, "POST", ts.URL+"/v1/segment?format=index", testPNG(16, 16, 5))
	if a.code != 503 || a.head.Get("Retry-After") != "1" {
		t.Errorf("full queue: %d, Retry-After %q", a.code, a.head.Get("Retry-After"))
	}
	a.apiErr(t)
	m := do(t, "GET", ts.URL+"/metrics", nil)
	if !strings.Contains(string(m.body), "segkit_queue_depth 2\n") {
		t.Error("metrics: queue depth is not 2")
	}
	close(g.release)
	for i := 0; i < 3; i++ {
		var a answer
		if i < 2 {
			a = <-queued
		} else {
			a = <-blocker
		}
		if a.code != 200 {
			t.Errorf("queued request: %d", a.code)
		}
	}
}

// A request past its deadline answers 504, and the server goes on.
func TestDeadline(t *testing.T) {
	g := newGate()
	_, ts := start(t, Options{Timeout: 300 * time.Millisecond}, g.hook)
	a := do(t, "POST", ts.URL+"/v1/segment", testPNG(16, 16, 1))
	if a.code != 504 {
		t.Errorf("past the deadline: %d %s", a.code, a.body)
	}
	a.apiErr(t)
	close(g.release)
	if a := do(t, "POST", ts.URL+"/v1/segment", testPNG(16, 16, 1)); a.code != 200 {
		t.Errorf("after a 504: %d", a.code)
	}
}

// Shutdown (SIGTERM's path): readyz turns 503, the listener closes, the request in flight is
// answered, then Serve returns.
func TestGracefulShutdown(t *testing.T) {
	g := newGate()
	s, err := newServer(predictor(t), Options{}, g.hook)
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + l.Addr().String()
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- Serve(ctx, l, s, 20*time.Second) }()
	inflight := make(chan answer, 1)
	go func() { inflight <- do(t, "POST", url+"/v1/segment?format=index", testPNG(16, 16, 1)) }()
	<-g.entered
	cancel()
	waitFor(t, "the listener to close", func() bool {
		c, err := net.DialTimeout("tcp", l.Addr().String(), time.Second)
		if err == nil {
			c.Close()
		}
		return err != nil
	})
	if !s.draining.Load() {
		t.Error("not draining")
	}
	select {
	case err := <-served:
		t.Fatalf("Serve returned (%v) with a request in flight", err)
	case <-time.After(50 * time.Millisecond):
	}
	close(g.release)
	if a := <-inflight; a.code != 200 {
		t.Errorf("the request in flight: %d %s", a.code, a.body)
	}
	if err := <-served; err != nil {
		t.Errorf("Serve: %v", err)
	}
}

// The page, its script and style, with a CSP that keeps it to its own files.
func TestPage(t *testing.T) {
	_, ts := start(t, Options{}, nil)
	a := do(t, "GET", ts.URL+"/", nil)
	if a.code != 200 || !strings.HasPrefix(a.head.Get("Content-Type"), "text/html") ||
		!strings.Contains(a.head.Get("Content-Security-Policy"), "default-src 'self'") || !bytes.Contains(a.body, []byte(`src="/static/app.js"`)) {
		t.Errorf("page: %d %v", a.code, a.head)
	}
	for path, ctype := range map[string]string{"/static/app.js": "javascript", "/static/style.css": "text/css"} {
		if a := do(t, "GET", ts.URL+path, nil); a.code != 200 || !strings.Contains(a.head.Get("Content-Type"), ctype) {
			t.Errorf("%s: %d %q", path, a.code, a.head.Get("Content-Type"))
		}
	}
	if a := do(t, "GET", ts.URL+"/static/missing.js", nil); a.code != 404 {
		t.Errorf("missing asset: %d", a.code)
	}
	for _, f := range []string{"web/index.html", "web/app.js", "web/style.css"} {
		b, _ := webFS.ReadFile(f)
		if bytes.Contains(b, []byte("://")) {
			t.Errorf("%s names another site: the page must work offline", f)
		}
	}
}
