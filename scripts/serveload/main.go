// Command serveload puts a bounded load on a running segpredict serve (on 127.0.0.1 only):
// N clients send good images and a mix of bad inputs (a truncated JPEG, a 30000×30000 PNG
// header, a text file, a body over the limit), and it prints p50/p99 latency, images/s, and
// every answer that was not the expected one. scripts/serve_load.sh starts the server, runs
// it and adds the server's peak RSS. Not a test: run it by hand.
package main

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"flag"
	"fmt"
	"hash/crc32"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"sync"
	"time"
)

type input struct {
	name  string
	body  []byte
	ctype string
	want  int // the expected status
}

func main() {
	addr := flag.String("url", "http://127.0.0.1:8080", "the server (loopback only)")
	clients := flag.Int("clients", 4, "concurrent clients")
	requests := flag.Int("requests", 200, "requests in all (good and bad)")
	badEvery := flag.Int("bad-every", 5, "every Nth request is a bad input (0: none)")
	maxBody := flag.Int("max-body", 1<<20, "the server's --max-body (the oversized body is one byte more)")
	size := flag.String("size", "320x240", "good images' size WxH")
	token := flag.String("token", "", "bearer token, if the server has one")
	asJSON := flag.Bool("json", false, "print one JSON object")
	flag.Parse()

	u, err := url.Parse(*addr)
	if err != nil {
		fail(err)
	}
	if ip := net.ParseIP(u.Hostname()); ip == nil || !ip.IsLoopback() {
		fail(fmt.Errorf("-url %s: the load check only runs against 127.0.0.1 (or ::1)", *addr))
	}
	var w, h int
	if _, err := fmt.Sscanf(*size, "%dx%d", &w, &h); err != nil || w < 1 || h < 1 {
		fail(fmt.Errorf("-size %q: WxH", *size))
	}
	goodJPEG := testJPEG(w, h)
	good := []input{
		{"good PNG", testPNG(w, h), "image/png", 200},
		{"good JPEG", goodJPEG, "image/jpeg", 200},
	}
	bad := []input{
		{"truncated JPEG", goodJPEG[:len(goodJPEG)/2], "image/jpeg", 400},
		{"30000×30000 PNG header", pngHeader(30000, 30000), "image/png", 413},
		{"not an image", []byte("this is not an image, it is a sentence"), "image/png", 400},
		{"oversized body", make([]byte, *maxBody+1), "application/octet-stream", 413},
	}

	type outcome struct {
		in      input
		code    int
		err     error
		latency time.Duration
	}
	jobs := make(chan input)
	results := make(chan outcome, *requests)
	client := &http.Client{Timeout: 2 * time.Minute}
	var wg sync.WaitGroup
	for c := 0; c < *clients; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for in := range jobs {
				req, _ := http.NewRequest("POST", *addr+"/v1/segment?format=index", bytes.NewReader(in.body))
				req.Header.Set("Content-Type", in.ctype)
				if *token != "" {
					req.Header.Set("Authorization", "Bearer "+*token)
				}
				start := time.Now()
				resp, err := client.Do(req)
				o := outcome{in: in, err: err}
				if err == nil {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					o.code = resp.StatusCode
				}
				o.latency = time.Since(start)
				results <- o
			}
		}()
	}
	start := time.Now()
	go func() {
		for i := 0; i < *requests; i++ {
			if *badEvery > 0 && i%*badEvery == *badEvery-1 {
				jobs <- bad[(i / *badEvery)%len(bad)]
			} else {
				jobs <- good[i%len(good)]
			}
		}
		close(jobs)
	}()
	wg.Wait()
	wall := time.Since(start)
	close(results)

	var lat []time.Duration
	var goodN, badN, errors int
	unexpected := map[string]int{}
	for o := range results {
		if o.in.want == 200 {
			goodN++
		} else {
			badN++
		}
		if o.err != nil || o.code != o.in.want {
			errors++
			why := fmt.Sprint(o.code)
			if o.err != nil {
				why = o.err.Error()
			}
			unexpected[fmt.Sprintf("%s: %s (want %d)", o.in.name, why, o.in.want)]++
			continue
		}
		if o.in.want == 200 {
			lat = append(lat, o.latency)
		}
	}
	slices.Sort(lat)
	pct := func(p float64) float64 {
		if len(lat) == 0 {
			return 0
		}
		return float64(lat[min(len(lat)-1, int(p*float64(len(lat))))].Microseconds()) / 1e3
	}
	res := map[string]any{
		"clients": *clients, "requests": *requests, "good": goodN, "bad": badN, "errors": errors,
		"image": fmt.Sprintf("%dx%d", w, h), "wall_s": wall.Seconds(),
		"p50_ms": pct(0.50), "p99_ms": pct(0.99), "images_per_s": float64(len(lat)) / wall.Seconds(),
		"unexpected": unexpected,
	}
	if *asJSON {
		json.NewEncoder(os.Stdout).Encode(res)
	} else {
		fmt.Printf("%d clients, %d requests (%d good %dx%d, %d bad) in %.1f s: p50 %.0f ms, p99 %.0f ms, %.2f images/s, errors %d\n",
			*clients, *requests, goodN, w, h, badN, wall.Seconds(), pct(0.5), pct(0.99), float64(len(lat))/wall.Seconds(), errors)
		for k, n := range unexpected {
			fmt.Printf("  unexpected: %s ×%d\n", k, n)
		}
	}
	if errors > 0 {
		os.Exit(1)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "serveload:", err)
	os.Exit(2)
}

func pattern(w, h int) *image.RGBA {
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			img.Set(x, y, color.RGBA{uint8(x * 255 / w), uint8(y * 255 / h), uint8((x ^ y) & 0xff), 255})
		}
	}
	return img
}

func testPNG(w, h int) []byte {
	var buf bytes.Buffer
	png.Encode(&buf, pattern(w, h))
	return buf.Bytes()
}

func testJPEG(w, h int) []byte {
	var buf bytes.Buffer
	jpeg.Encode(&buf, pattern(w, h), &jpeg.Options{Quality: 90})
	return buf.Bytes()
}

// pngHeader is a PNG signature and IHDR declaring w×h, with no pixels: a decompression bomb's
// front, which the server must refuse from the header.
func pngHeader(w, h uint32) []byte {
	b := append([]byte("\x89PNG\r\n\x1a\n"), 0, 0, 0, 13)
	ihdr := append([]byte("IHDR"), make([]byte, 13)...)
	binary.BigEndian.PutUint32(ihdr[4:], w)
	binary.BigEndian.PutUint32(ihdr[8:], h)
	ihdr[12], ihdr[13] = 8, 2
	b = append(b, ihdr...)
	return binary.BigEndian.AppendUint32(b, crc32.ChecksumIEEE(ihdr))
}
