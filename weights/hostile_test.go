package weights

import (
	"archive/zip"
	"bytes"
	"compress/flate"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/segkit/segkit/internal/memcheck"
)

// Forged files are refused with one short error naming the file, within bounded memory: each
// case runs in a child process whose peak resident memory is measured (internal/memcheck).
const (
	peakLimit = 200 << 20
	timeLimit = 5 * time.Second
)

// deflatedZeros is a raw deflate stream of mib MiB of zeros, about 1,000 times smaller: one
// flushed block of 1 MiB of zeros, repeated (it reads the same after any run of zeros).
func deflatedZeros(t testing.TB, mib int) []byte {
	var buf bytes.Buffer
	w, err := flate.NewWriter(&buf, flate.BestCompression)
	if err != nil {
		t.Fatal(err)
	}
	chunk := make([]byte, 1<<20)
	block := func() []byte {
		buf.Reset()
		w.Write(chunk)
		w.Flush()
		return bytes.Clone(buf.Bytes())
	}
	out := block()
	again := block()
	for range mib - 2 {
		out = append(out, again...)
	}
	out = append(out, again...)
	buf.Reset()
	w.Close()
	return append(out, buf.Bytes()...)
}

// rawZip writes records as they are given: compressed bytes and the sizes they declare.
func rawZip(t testing.TB, recs ...*zip.FileHeader) func(data ...[]byte) []byte {
	return func(data ...[]byte) []byte {
		var buf bytes.Buffer
		zw := zip.NewWriter(&buf)
		for i, h := range recs {
			w, err := zw.CreateRaw(h)
			if err != nil {
				t.Fatal(err)
			}
			w.Write(data[i])
		}
		if err := zw.Close(); err != nil {
			t.Fatal(err)
		}
		return buf.Bytes()
	}
}

// readFile is what a forged file is refused by.
func readFile(path string) error {
	_, err := Read(path)
	return err
}

// A compressed storage record's inflated size is bounded before it is inflated: a 1 MB file
// whose record inflates to 1 GiB of zeros (3 MB: 3 GiB), which the tensor's storage declares
// and the record's header confirms, is refused without inflating it.
func TestHostileDeflatedRecords(t *testing.T) {
	for _, c := range []struct {
		name string
		mib  int
	}{{"deflated-1MB.pth", 1024}, {"deflated-3MB.pth", 3072}} {
		t.Run(c.name, func(t *testing.T) {
			want := fmt.Sprintf("storage 0: the compressed storages declare %d bytes", c.mib<<20)
			memcheck.Refused(t, c.name, want, peakLimit, timeLimit, func(path string) error {
				z := deflatedZeros(t, c.mib)
				numel := int64(c.mib) << 18 // float32s
				pkl := stateDict(pstr("w"), rebuild(pidZip("FloatStorage", "0", numel), 0, []int64{numel}, []int64{1}))
				file := rawZip(t, &zip.FileHeader{Name: "a/data.pkl", Method: zip.Store, CompressedSize64: uint64(len(pkl)), UncompressedSize64: uint64(len(pkl))},
					&zip.FileHeader{Name: "a/data/0", Method: zip.Deflate, CompressedSize64: uint64(len(z)), UncompressedSize64: uint64(c.mib) << 20})(pkl, z)
				return os.WriteFile(path, file, 0o644)
			}, readFile)
		})
	}
}

// pickleBomb is a protocol-4 pickle of n units of a list, a dict memoized and appended to the
// list, with a MARK every 16 units: 4 bytes a unit, all of it kept.
func pickleBomb(n int) []byte {
	b := make([]byte, 0, 4*n+n/16+8)
	b = append(b, 0x80, 4)
	for i := range n {
		if i%16 == 0 {
			b = append(b, '(')
		}
		b = append(b, "]}\x94a"...)
	}
	return append(b, '.')
}

// A pickle of a few MB whose opcodes each make a value (lists, dicts, memo entries, MARKs) is
// refused once its values outgrow what its size justifies, in a zip file and a legacy one.
func TestHostilePickle(t *testing.T) {
	const units = 1_500_000 // 6 MB
	for _, c := range []struct {
		name string
		file func() []byte
	}{
		{"pickle-bomb-zip.pth", func() []byte {
			return zipFile(t, record{"a/data.pkl", pickleBomb(units)})
		}},
		{"pickle-bomb-legacy.pth", func() []byte {
			return legacyFile(pickleBomb(units), nil, nil, nil)
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			memcheck.Refused(t, c.name, "far more than its size justifies", peakLimit, timeLimit, func(path string) error {
				return os.WriteFile(path, c.file(), 0o644)
			}, readFile)
		})
	}
}

// Names and values a forged file gives are cut short in messages.
func TestLongNamesCut(t *testing.T) {
	long := strings.Repeat("stage2.0.branches.100000000.", 100_000) // 2.8 MB
	zf := zipFile(t, record{"a/data.pkl", stateDict(pstr(long), rebuild(pidZip("FloatStorage", "0", 4), 0, []int64{8}, []int64{1}))},
		record{"a/data/0", floatsLE(1, 2, 3, 4)})
	_, err := readBytes(zf)
	if err == nil || len(err.Error()) > 300 || !strings.Contains(err.Error(), "(2800000 bytes)") {
		t.Errorf("error of %d bytes: %.300v", len(err.Error()), err)
	}
}

// A report on a forged file's tensors stays short, whatever their number and names.
func TestReportShort(t *testing.T) {
	r := Report{Unexpected: make([]string, 100_000)}
	for i := range r.Unexpected {
		r.Unexpected[i] = fmt.Sprintf("extra.%d.%s", i, strings.Repeat("x", 1000))
	}
	if s := r.String(); len(s) > 2000 || !strings.Contains(s, "100000 unexpected") || !strings.Contains(s, "99990 more") {
		t.Errorf("report of %d bytes: %.300s", len(s), s)
	}
}
