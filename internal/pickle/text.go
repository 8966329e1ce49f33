package pickle

import (
	"errors"
	"fmt"
	"math/big"
	"strconv"
	"strings"
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
