package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// segpredict serve answers with exactly segpredict's files for the same image, checkpoint and
// protocol flags (shared: --tta flip on both), and stops cleanly when its context ends (the
// path SIGTERM takes).
func TestServeMatchesSegpredict(t *testing.T) {
	ck := tinyCheckpoint(t)
	in, out := t.TempDir(), t.TempDir()
	img := filepath.Join(in, "a.png")
	writePNG(t, img, 57, 41)
	if log, err := runCLI("--checkpoint", ck, "--tta", "flip", "--out", out, img); err != nil {
		t.Fatalf("%v\n%s", err, log)
	}

	cmd := newCmd()
	pr, pw := io.Pipe()
	cmd.SetOut(pw)
	cmd.SetErr(io.Discard)
	cmd.SetArgs([]string{"serve", "--checkpoint", ck, "--tta", "flip", "--addr", "127.0.0.1:0"})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- cmd.ExecuteContext(ctx)
		pw.Close()
	}()
	lines := bufio.NewScanner(pr)
	if !lines.Scan() {
		t.Fatalf("serve printed nothing: %v", <-done)
	}
	url := regexp.MustCompile(`http://[0-9.:]+`).FindString(lines.Text())
	if url == "" {
		t.Fatalf("no address in %q", lines.Text())
	}
	go io.Copy(io.Discard, pr)
	data, _ := os.ReadFile(img)
	for format, file := range map[string]string{"index": "a.png", "color": "a_color.png", "overlay": "a_overlay.jpg"} {
		resp, err := http.Post(url+"/v1/segment?format="+format, "image/png", bytes.NewReader(data))
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		want, _ := os.ReadFile(filepath.Join(out, file))
		if resp.StatusCode != 200 || !bytes.Equal(got, want) {
			t.Errorf("%s: %d, %d bytes; segpredict's %s has %d (want them bit for bit)", format, resp.StatusCode, len(got), file, len(want))
		}
	}
	resp, err := http.Get(url + "/v1/model")
	if err != nil {
		t.Fatal(err)
	}
	card, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(card), `"flip": true`) || !strings.Contains(string(card), `"checkpoint": "best.safetensors"`) {
		t.Errorf("model card does not show the flags' protocol:\n%s", card)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("serve after its context ended: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("serve did not stop")
	}
}

// serve's wrong command lines are usage errors, found before the checkpoint is read.
func TestServeUsage(t *testing.T) {
	for _, args := range [][]string{{"--batch", "0"}, {"--queue", "0"}, {"--opacity", "1.5"}, {"--mode", "tiles"},
		{"--crop", "64"}, {"--addr", "nohost"}, {"--timeout", "0s"}, {"--max-body", "0"}} {
		_, err := runCLI(append([]string{"serve", "--checkpoint", "missing.safetensors"}, args...)...)
		var u usageError
		if !errors.As(err, &u) || !strings.Contains(err.Error(), strings.TrimPrefix(args[0], "--")) {
			t.Errorf("serve %v: %v (want a usage error naming %s)", args, err, args[0])
		}
	}
	if _, err := runCLI("serve", "extra"); err == nil {
		t.Error("serve with an argument was accepted")
	}
}
