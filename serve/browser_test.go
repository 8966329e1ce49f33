package serve

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/chromedp/cdproto/input"
	"github.com/chromedp/chromedp"

	"github.com/segkit/segkit/internal/testci"
)

// ScreenshotPath is where TestBrowser leaves its screenshot of the page.
var screenshotPath = filepath.Join(os.TempDir(), "segkit-serve-page.png")

func chromium(t *testing.T) string {
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	testci.Missing(t, "no chromium on PATH: the browser test needs it (scripts/setup.sh --chromium installs Debian's chromium)")
	return ""
}

// A real browser drives the page: it loads the model card, uploads an image, waits for the
// overlay, reads the legend and a hovered pixel's class, and the mask it displays (the colour
// view's pixels, and the labels it holds) equals the API's, bit for bit.
func TestBrowser(t *testing.T) {
	exe := chromium(t)
	_, ts := start(t, Options{}, nil)
	const w, h = 160, 120
	data := testPNG(w, h, 4)
	path := filepath.Join(t.TempDir(), "street.png")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	// What the API says for the same image.
	var api segmentResponse
	do(t, "POST", ts.URL+"/v1/segment?include=labels", data).json(t, &api)
	wantLabels, _ := base64.StdEncoding.DecodeString(api.Labels)
	colorPNG := do(t, "POST", ts.URL+"/v1/segment?format=color", data).body
	colorImg, err := png.Decode(bytes.NewReader(colorPNG))
	if err != nil {
		t.Fatal(err)
	}

	opts := append(slices.Clone(chromedp.DefaultExecAllocatorOptions[:]), chromedp.ExecPath(exe),
		chromedp.NoSandbox, chromedp.DisableGPU, chromedp.WindowSize(1280, 900),
		chromedp.UserDataDir(t.TempDir()))
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelAlloc()
	ctx, cancel := chromedp.NewContext(actx, chromedp.WithLogf(t.Logf))
	defer cancel()
	ctx, cancelTime := context.WithTimeout(ctx, 50*time.Second)
	defer cancelTime()

	err = chromedp.Do(ctx,
		chromedp.Navigate(ts.URL+"/"),
		chromedp.WaitReady(chromedp.CSS(`body[data-state="ready"]`)),
		chromedp.SetUploadFiles(chromedp.CSS("#file"), []string{path}),
		chromedp.WaitReady(chromedp.CSS(`body[data-state="done"], body[data-state="error"]`)),
	)
	if err != nil {
		t.Fatal(err)
	}
	if errText, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.getElementById("error").textContent`)); err != nil || errText != "" {
		t.Fatalf("the page shows an error: %q (%v)", errText, err)
	}
	legend, err := chromedp.Run(ctx, chromedp.Evaluate[[][]string](`Array.from(document.querySelectorAll("#legend li")).map(li =>
		[li.dataset.class, li.querySelector(".name").textContent, li.querySelector(".share").textContent])`))
	if err != nil {
		t.Fatal(err)
	}
	labels, err := chromedp.Run(ctx, chromedp.Evaluate[[]int](`Array.from(state.labels)`))
	if err != nil {
		t.Fatal(err)
	}
	shot, err := chromedp.Run(ctx, chromedp.FullScreenshot(100)) // 100: PNG
	if err != nil {
		t.Fatal(err)
	}
	rect, err := chromedp.Run(ctx, chromedp.Evaluate[map[string]float64](`(() => { const r = document.getElementById("view").getBoundingClientRect();
		return {left: r.left, top: r.top, width: r.width, height: r.height}; })()`))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(screenshotPath, shot, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s", screenshotPath)

	// The legend: the classes present, largest first, with the API's shares.
	if len(legend) != len(api.Classes) {
		t.Fatalf("legend %v, API classes %+v", legend, api.Classes)
	}
	for i, c := range api.Classes {
		want := []string{fmt.Sprint(c.Class), c.Name, fmt.Sprintf("%.1f%%", 100*c.Share)}
		if !slices.Equal(legend[i], want) {
			t.Errorf("legend row %d: %v, want %v", i, legend[i], want)
		}
	}
	if len(labels) != w*h {
		t.Fatalf("the page holds %d labels for %d pixels", len(labels), w*h)
	}
	for i, l := range labels {
		if l != int(wantLabels[i]) {
			t.Fatalf("the page's label at pixel %d is %d, the API's %d", i, l, wantLabels[i])
		}
	}

	// The colour view as displayed: the canvas's pixels are the API's colour PNG.
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(`input[name="view"][value="color"]`))); err != nil {
		t.Fatal(err)
	}
	canvas, err := chromedp.Run(ctx, chromedp.Evaluate[[]int](fmt.Sprintf(
		`Array.from(document.getElementById("view").getContext("2d").getImageData(0, 0, %d, %d).data)`, w, h)))
	if err != nil {
		t.Fatal(err)
	}
	if len(canvas) != 4*w*h {
		t.Fatalf("canvas: %d values", len(canvas))
	}
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			r, g, b, _ := colorImg.At(x, y).RGBA()
			i := 4 * (y*w + x)
			if got := [3]int{canvas[i], canvas[i+1], canvas[i+2]}; got != [3]int{int(r >> 8), int(g >> 8), int(b >> 8)} {
				t.Fatalf("displayed colour at (%d, %d) is %v, the API's colour PNG has %v", x, y, got, [3]uint32{r >> 8, g >> 8, b >> 8})
			}
		}
	}

	// Hovering a pixel names its class.
	px, py := 97, 33
	err = chromedp.Do(ctx, chromedp.MouseEvent(input.DispatchMouseEventTypeMouseMoved,
		rect["left"]+(float64(px)+0.5)*rect["width"]/w, rect["top"]+(float64(py)+0.5)*rect["height"]/h))
	if err != nil {
		t.Fatal(err)
	}
	hovered, err := chromedp.Run(ctx, chromedp.Evaluate[map[string]string](
		`Object.assign({text: document.getElementById("pixel").textContent}, document.getElementById("pixel").dataset)`))
	if err != nil {
		t.Fatal(err)
	}
	k := wantLabels[py*w+px]
	want := fmt.Sprintf("(%d, %d): %s", px, py, predictorClasses(t)[k])
	if hovered["text"] != want || hovered["class"] != fmt.Sprint(k) {
		t.Errorf("hover: %v, want %q", hovered, want)
	}
}

func predictorClasses(t *testing.T) []string { return predictor(t).Classes }
