package sentrytest

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// term is one search term of Sentry's search syntax: key:value, key:>=value, !key:value,
// key:"quoted value", or free text.
type term struct {
	neg   bool
	key   string // "" for free text
	op    string // "", ">=", ">", "<=", "<"
	value string
	when  time.Time // for date keys
	num   int       // for numeric keys
}

var (
	dateKeys    = map[string]bool{"firstSeen": true, "lastSeen": true, "timestamp": true}
	numericKeys = map[string]bool{"times_seen": true}
)

// tokenize splits on whitespace outside double quotes.
func tokenize(q string) ([]string, error) {
	var toks []string
	var b strings.Builder
	inQuote, esc := false, false
	for _, r := range q {
		switch {
		case esc:
			b.WriteRune(r)
			esc = false
		case r == '\\' && inQuote:
			b.WriteRune(r)
			esc = true
		case r == '"':
			inQuote = !inQuote
			b.WriteRune(r)
		case (r == ' ' || r == '\t' || r == '\n') && !inQuote:
			if b.Len() > 0 {
				toks = append(toks, b.String())
				b.Reset()
			}
		default:
			b.WriteRune(r)
		}
	}
	if inQuote {
		return nil, fmt.Errorf("unterminated quote in %q", q)
	}
	if b.Len() > 0 {
		toks = append(toks, b.String())
	}
	return toks, nil
}

func unquote(v string) (string, error) {
	if !strings.HasPrefix(v, `"`) {
		if strings.Contains(v, `"`) {
			return "", fmt.Errorf("stray quote in %q", v)
		}
		return v, nil
	}
	if len(v) < 2 || !strings.HasSuffix(v, `"`) {
		return "", fmt.Errorf("bad quoting in %q", v)
	}
	in := v[1 : len(v)-1]
	var b strings.Builder
	for i := 0; i < len(in); i++ {
		if in[i] == '\\' && i+1 < len(in) {
			i++
		} else if in[i] == '"' {
			return "", fmt.Errorf("unescaped quote in %q", v)
		}
		b.WriteByte(in[i])
	}
	return b.String(), nil
}

func parseSearch(q string) ([]term, error) {
	toks, err := tokenize(q)
	if err != nil {
		return nil, err
	}
	var out []term
	for _, tok := range toks {
		var t term
		key, rest, hasKey := strings.Cut(tok, ":")
		if !hasKey || strings.HasPrefix(tok, `"`) || key == "" {
			v, err := unquote(tok)
			if err != nil {
				return nil, err
			}
			t.value = v
			out = append(out, t)
			continue
		}
		if strings.HasPrefix(key, "!") {
			t.neg, key = true, key[1:]
		}
		t.key = key
		for _, op := range []string{">=", "<=", ">", "<", "="} {
			if strings.HasPrefix(rest, op) {
				t.op, rest = strings.TrimPrefix(op, "="), rest[len(op):]
				break
			}
		}
		if t.value, err = unquote(rest); err != nil {
			return nil, err
		}
		switch {
		case dateKeys[key]:
			if t.when, err = parseTime(t.value); err != nil {
				return nil, fmt.Errorf("%s: %v", key, err)
			}
		case numericKeys[key]:
			if t.num, err = strconv.Atoi(t.value); err != nil {
				return nil, fmt.Errorf("%s: %q is not a number", key, t.value)
			}
		case t.op != "":
			return nil, fmt.Errorf("invalid operator %s for %s", t.op, key)
		}
		if t.value == "" && key != "" {
			return nil, fmt.Errorf("empty value for %s", key)
		}
		out = append(out, t)
	}
	return out, nil
}

func cmpTime(t term, v time.Time) bool {
	switch t.op {
	case ">=":
		return !v.Before(t.when)
	case ">":
		return v.After(t.when)
	case "<=":
		return !v.After(t.when)
	case "<":
		return v.Before(t.when)
	}
	return v.Equal(t.when)
}

func cmpNum(t term, v int) bool {
	switch t.op {
	case ">=":
		return v >= t.num
	case ">":
		return v > t.num
	case "<=":
		return v <= t.num
	case "<":
		return v < t.num
	}
	return v == t.num
}

// glob matches Sentry's wildcard values ("1.2.*"); without * it is equality.
func glob(pattern, v string) bool {
	if !strings.Contains(pattern, "*") {
		return pattern == v
	}
	parts := strings.Split(pattern, "*")
	if !strings.HasPrefix(v, parts[0]) {
		return false
	}
	v = v[len(parts[0]):]
	for i, p := range parts[1:] {
		if i == len(parts)-2 {
			return strings.HasSuffix(v, p)
		}
		j := strings.Index(v, p)
		if j < 0 {
			return false
		}
		v = v[j+len(p):]
	}
	return true
}

func matchIssue(terms []term, is Issue) bool {
	for _, t := range terms {
		var ok bool
		switch t.key {
		case "":
			ok = strings.Contains(strings.ToLower(is.Title), strings.ToLower(t.value))
		case "is":
			ok = t.value != "resolved" && t.value != "ignored" && t.value != "archived"
		case "firstSeen":
			ok = cmpTime(t, is.FirstSeen)
		case "lastSeen":
			ok = cmpTime(t, is.LastSeen)
		case "times_seen":
			ok = cmpNum(t, is.Count)
		case "release":
			ok = glob(t.value, is.Release)
		case "environment":
			ok = glob(t.value, is.Environment)
		case "level":
			ok = glob(t.value, is.Level)
		case "title", "message":
			ok = strings.Contains(strings.ToLower(is.Title), strings.ToLower(strings.Trim(t.value, "*")))
		case "has":
			_, ok = is.Tags[t.value]
		default:
			v, has := is.Tags[t.key]
			ok = has && glob(t.value, v)
		}
		if ok == t.neg {
			return false
		}
	}
	return true
}

func matchEvent(terms []term, e errorEvents) bool {
	for _, t := range terms {
		var ok bool
		switch t.key {
		case "":
			ok = false // seeded error events carry no message
		case "timestamp":
			ok = cmpTime(t, e.at)
		case "release":
			ok = glob(t.value, e.release)
		case "environment":
			ok = glob(t.value, e.environment)
		case "event.type":
			ok = t.value == "error"
		case "level":
			ok = glob(t.value, "error")
		case "has":
			_, ok = e.tags[t.value]
		default:
			v, has := e.tags[t.key]
			ok = has && glob(t.value, v)
		}
		if ok == t.neg {
			return false
		}
	}
	return true
}
