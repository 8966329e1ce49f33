package pickle

import (
	"errors"
	"fmt"
	"math/big"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Protocol 0 writes numbers and strings as text lines; these decode them.

// parseInt decodes INT's and LONG's decimal text.
func parseInt(s string) (any, error) {
	s = strings.TrimSpace(s)
	if len(s) > maxDigits {
		return nil, fmt.Errorf("integer of %d digits (at most %d)", len(s), maxDigits)
	}
	if v, err := strconv.ParseInt(s, 10, 64); err == nil {
		return v, nil
	} else if !errors.Is(err, strconv.ErrRange) {
		return nil, fmt.Errorf("integer %q: %w", s, err)
	}
	v, ok := new(big.Int).SetString(s, 10)
	if !ok {
		return nil, fmt.Errorf("integer %q", s)
	}
	return normInt(v), nil
}

// parseFloat decodes FLOAT's text (Python's repr: "1.5", "inf", "1e+300").
func parseFloat(s string) (float64, error) {
	v, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
	if err != nil && !errors.Is(err, strconv.ErrRange) { // out of range: ±Inf or 0, as Python
		return 0, fmt.Errorf("float %q: %w", s, err)
	}
	return v, nil
}

// parseIndex decodes PUT's and GET's memo index.
func parseIndex(line []byte) (int64, error) {
	v, err := strconv.ParseInt(strings.TrimSpace(string(line)), 10, 64)
	if err != nil || v < 0 {
		return 0, fmt.Errorf("memo index %q", line)
	}
	return v, nil
}

// rawUnicodeEscape decodes UNICODE's raw-unicode-escape text: \uXXXX and \UXXXXXXXX escapes,
// every other byte a Latin-1 character.
func rawUnicodeEscape(b []byte) string {
	var sb strings.Builder
	for i := 0; i < len(b); i++ {
		c := b[i]
		if c == '\\' && i+1 < len(b) && (b[i+1] == 'u' || b[i+1] == 'U') {
			n := 4
			if b[i+1] == 'U' {
				n = 8
			}
			if i+2+n <= len(b) {
				if v, err := strconv.ParseUint(string(b[i+2:i+2+n]), 16, 32); err == nil {
					sb.WriteRune(rune(v)) // beyond Unicode: written as U+FFFD
					i += 1 + n
					continue
				}
			}
		}
		sb.WriteRune(rune(c))
	}
	return sb.String()
}

// stringEscape decodes STRING's quoted Python 2 repr into the string's bytes.
func stringEscape(line []byte) (string, error) {
	if len(line) < 2 || line[0] != line[len(line)-1] || line[0] != '\'' && line[0] != '"' {
		return "", errors.New("STRING argument is not quoted")
	}
	s := line[1 : len(line)-1]
	out := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		if s[i] != '\\' || i+1 == len(s) {
			out = append(out, s[i])
			continue
		}
		i++
		switch c := s[i]; c {
		case '\\', '\'', '"':
			out = append(out, c)
		case 'a':
			out = append(out, '\a')
		case 'b':
			out = append(out, '\b')
		case 'f':
			out = append(out, '\f')
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		case 'v':
			out = append(out, '\v')
		case '\n': // a continued line
		case 'x':
			if i+3 > len(s) {
				return "", errors.New(`STRING with a truncated \x escape`)
			}
			v, err := strconv.ParseUint(string(s[i+1:i+3]), 16, 8)
			if err != nil {
				return "", errors.New(`STRING with an invalid \x escape`)
			}
			out = append(out, byte(v))
			i += 2
		default:
			if c >= '0' && c <= '7' { // up to three octal digits
				v, n := 0, 0
				for n < 3 && i+n < len(s) && s[i+n] >= '0' && s[i+n] <= '7' {
					v = v*8 + int(s[i+n]-'0')
					n++
				}
				out = append(out, byte(v))
				i += n - 1
				continue
			}
			out = append(out, '\\', c)
		}
	}
	return string(out), nil
}

// Brief formats a decoded value for a message, cut short: a forged pickle's strings and
// tuples cannot make an error long. A short printable string is shown as it is.
func Brief(v any) string {
	const keep = 8 // items of a sequence
	switch v := v.(type) {
	case string:
		if len(v) <= 100 && strings.IndexFunc(v, func(r rune) bool { return !unicode.IsPrint(r) }) < 0 {
			return v
		}
		if len(v) <= 100 {
			return strconv.Quote(v)
		}
		cut := 64
		for cut > 0 && !utf8.RuneStart(v[cut]) {
			cut--
		}
		return fmt.Sprintf("%s…(%d bytes)", strconv.Quote(v[:cut]), len(v))
	case Tuple:
		return briefItems("(", v, ")", keep)
	case []any:
		return briefItems("[", v, "]", keep)
	case *List:
		return briefItems("[", v.Items, "]", keep)
	case *Dict, *Set, *Object:
		return TypeName(v)
	case []int64:
		return briefInts(v, keep)
	case []int:
		return briefInts(v, keep)
	}
	s := fmt.Sprint(v)
	if g, ok := v.(Global); ok {
		s = Brief(g.String())
	}
	if len(s) > 100 {
		return s[:64] + fmt.Sprintf("…(%d bytes)", len(s))
	}
	return s
}

func briefItems(open string, items []any, close string, keep int) string {
	parts := make([]string, 0, min(len(items), keep)+1)
	for _, x := range items[:min(len(items), keep)] {
		parts = append(parts, Brief(x))
	}
	if len(items) > keep {
		parts = append(parts, fmt.Sprintf("… %d items", len(items)))
	}
	return open + strings.Join(parts, ", ") + close
}

func briefInts[T int | int64](v []T, keep int) string {
	if len(v) <= keep {
		return fmt.Sprint(v)
	}
	s := fmt.Sprint(v[:keep])
	return s[:len(s)-1] + fmt.Sprintf(" … %d items]", len(v))
}
