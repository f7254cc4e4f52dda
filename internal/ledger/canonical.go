package ledger

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
)

// CanonicalJSON returns the canonical JSON encoding of v. Signatures and
// manifest digests are computed over these bytes, so the rules are fixed and
// must never change for a given schema version:
//
//  1. v is first encoded with encoding/json (struct tags, MarshalJSON methods
//     and json.RawMessage apply; invalid UTF-8 in Go strings becomes U+FFFD),
//     then re-read as a generic JSON value. The result depends only on that
//     JSON value, never on Go types or on how encoding/json lays out its output.
//  2. No insignificant whitespace anywhere.
//  3. Object members are sorted by key, comparing the keys' UTF-8 bytes
//     (plain Go string order). Duplicate keys are an error.
//  4. Arrays keep their order.
//  5. Strings are written as UTF-8 with the minimum escaping: '"' becomes \",
//     '\' becomes \\, U+0008 \b, U+0009 \t, U+000A \n, U+000C \f, U+000D \r,
//     every other code point below U+0020 \u00XX (lower-case hex). Everything
//     else, including '<', '>', '&', U+007F, U+2028 and U+2029, is written
//     verbatim (encoding/json's HTML escaping is undone).
//  6. Numbers are written exactly as their JSON literal text (json.Number):
//     never converted to float64, so large integers and long decimals keep
//     every digit. A float64 value is first formatted by encoding/json
//     (shortest round-trip form, e.g. 1e+21); a json.Number or
//     json.RawMessage keeps the caller's literal (e.g. 1e21, 1.50).
//  7. true, false and null are written as those words.
//
// This is RFC 8785 (JCS) except for rule 6 (JCS reformats numbers as IEEE
// doubles) and the key order of rule 3 (JCS compares UTF-16 code units; the
// two orders differ only for keys mixing U+E000..U+FFFF with astral code
// points).
func CanonicalJSON(v any) ([]byte, error) {
	raw, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("canonical json: %w", err)
	}
	return canonicalize(raw)
}

// canonicalize re-encodes one JSON document following CanonicalJSON's rules.
func canonicalize(raw []byte) ([]byte, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	val, err := parseValue(dec)
	if err != nil {
		return nil, fmt.Errorf("canonical json: %w", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, errors.New("canonical json: unexpected data after the top-level value")
	}
	var buf bytes.Buffer
	buf.Grow(len(raw))
	writeValue(&buf, val)
	return buf.Bytes(), nil
}

func parseValue(dec *json.Decoder) (any, error) {
	tok, err := dec.Token()
	if err != nil {
		if errors.Is(err, io.EOF) {
			return nil, io.ErrUnexpectedEOF
		}
		return nil, err
	}
	switch t := tok.(type) {
	case json.Delim:
		switch t {
		case '{':
			obj := map[string]any{}
			for dec.More() {
				kt, err := dec.Token()
				if err != nil {
					return nil, err
				}
				key, ok := kt.(string)
				if !ok {
					return nil, fmt.Errorf("object key is %T, not a string", kt)
				}
				if _, dup := obj[key]; dup {
					return nil, fmt.Errorf("duplicate object key %q", key)
				}
				v, err := parseValue(dec)
				if err != nil {
					return nil, err
				}
				obj[key] = v
			}
			if _, err := dec.Token(); err != nil { // '}'
				return nil, err
			}
			return obj, nil
		case '[':
			arr := []any{}
			for dec.More() {
				v, err := parseValue(dec)
				if err != nil {
					return nil, err
				}
				arr = append(arr, v)
			}
			if _, err := dec.Token(); err != nil { // ']'
				return nil, err
			}
			return arr, nil
		default:
			return nil, fmt.Errorf("unexpected %q", rune(t))
		}
	case string, json.Number, bool, nil:
		return t, nil
	default:
		return nil, fmt.Errorf("unexpected token %T", tok)
	}
}

func writeValue(buf *bytes.Buffer, v any) {
	switch t := v.(type) {
	case nil:
		buf.WriteString("null")
	case bool:
		if t {
			buf.WriteString("true")
		} else {
			buf.WriteString("false")
		}
	case json.Number:
		buf.WriteString(string(t))
	case string:
		writeString(buf, t)
	case []any:
		buf.WriteByte('[')
		for i, e := range t {
			if i > 0 {
				buf.WriteByte(',')
			}
			writeValue(buf, e)
		}
		buf.WriteByte(']')
	case map[string]any:
		keys := make([]string, 0, len(t))
		for k := range t {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		buf.WriteByte('{')
		for i, k := range keys {
			if i > 0 {
				buf.WriteByte(',')
			}
			writeString(buf, k)
			buf.WriteByte(':')
			writeValue(buf, t[k])
		}
		buf.WriteByte('}')
	default:
		// parseValue produces only the types above.
		panic(fmt.Sprintf("ledger: canonical json: unexpected %T", v))
	}
}

const hexDigits = "0123456789abcdef"

func writeString(buf *bytes.Buffer, s string) {
	buf.WriteByte('"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"':
			buf.WriteString(`\"`)
		case c == '\\':
			buf.WriteString(`\\`)
		case c == '\b':
			buf.WriteString(`\b`)
		case c == '\t':
			buf.WriteString(`\t`)
		case c == '\n':
			buf.WriteString(`\n`)
		case c == '\f':
			buf.WriteString(`\f`)
		case c == '\r':
			buf.WriteString(`\r`)
		case c < 0x20:
			buf.WriteString(`\u00`)
			buf.WriteByte(hexDigits[c>>4])
			buf.WriteByte(hexDigits[c&0xf])
		default:
			// The decoder hands us valid UTF-8, so bytes are copied as is.
			buf.WriteByte(c)
		}
	}
	buf.WriteByte('"')
}

// Manifest is what a version deploys and how it is reverted. Its digest
// (ManifestSHA256) is recorded in the index next to the version, so a change
// in what "version X" means is visible.
type Manifest struct {
	Version string `json:"version"`
	Deploy  any    `json:"deploy"`
	Revert  any    `json:"revert"`
	// Files maps destination path -> lower-case hex SHA-256 of the content.
	Files map[string]string `json:"files,omitempty"`
}

// ManifestSHA256 returns the lower-case hex SHA-256 of CanonicalJSON(m).
func ManifestSHA256(m Manifest) (string, error) {
	b, err := CanonicalJSON(m)
	if err != nil {
		return "", fmt.Errorf("manifest digest: %w", err)
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:]), nil
}
