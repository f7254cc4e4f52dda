package sentrytest

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// serveEnvelope handles POST /api/{project_id}/envelope/ (develop.sentry.dev/sdk/envelopes):
// it authenticates the DSN public key (X-Sentry-Auth, sentry_key query parameter, or the
// envelope header's dsn), parses the envelope, and keeps its event items.
func (s *Server) serveEnvelope(w http.ResponseWriter, r *http.Request) {
	reject := func(status int, msg string) {
		s.mu.Lock()
		s.rejections = append(s.rejections, msg)
		s.mu.Unlock()
		writeJSON(w, status, detail(msg))
	}
	if r.Method != http.MethodPost {
		reject(http.StatusMethodNotAllowed, "envelopes must be POSTed")
		return
	}
	pid := strings.TrimSuffix(strings.TrimPrefix(r.URL.Path, "/api/"), "/envelope/")
	if pid != s.opts.ProjectID {
		reject(http.StatusNotFound, fmt.Sprintf("unknown project %q", pid))
		return
	}
	var body io.Reader = r.Body
	if r.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(r.Body)
		if err != nil {
			reject(http.StatusBadRequest, "bad gzip body")
			return
		}
		defer zr.Close()
		body = zr
	}
	data, err := io.ReadAll(io.LimitReader(body, 20<<20))
	if err != nil {
		reject(http.StatusBadRequest, "reading body: "+err.Error())
		return
	}
	env, err := parseEnvelope(data)
	if err != nil {
		reject(http.StatusBadRequest, "invalid envelope: "+err.Error())
		return
	}

	// Collect every key the request offers; at least one must be given, and all must match.
	var keys []string
	if k := authKey(r.Header.Get("X-Sentry-Auth")); k != "" {
		keys = append(keys, k)
	}
	if k := r.URL.Query().Get("sentry_key"); k != "" {
		keys = append(keys, k)
	}
	if env.dsn != "" {
		u, err := url.Parse(env.dsn)
		if err != nil || u.User == nil {
			reject(http.StatusUnauthorized, "bad envelope authentication header: invalid dsn")
			return
		}
		keys = append(keys, u.User.Username())
		if p := strings.Trim(u.Path, "/"); p != pid {
			reject(http.StatusUnauthorized, "envelope dsn names another project")
			return
		}
	}
	if len(keys) == 0 {
		reject(http.StatusUnauthorized, "missing authorization information")
		return
	}
	for _, k := range keys {
		if k != s.key {
			reject(http.StatusUnauthorized, "invalid api key")
			return
		}
	}

	s.mu.Lock()
	s.envelopes++
	s.events = append(s.events, env.events...)
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]string{"id": env.eventID})
}

// authKey reads sentry_key from "Sentry sentry_version=7, sentry_client=..., sentry_key=...".
func authKey(h string) string {
	rest, ok := strings.CutPrefix(strings.TrimSpace(h), "Sentry ")
	if !ok {
		return ""
	}
	for _, kv := range strings.Split(rest, ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(kv), "=")
		if k == "sentry_key" {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

type envelope struct {
	eventID, dsn string
	events       []Event
}

// parseEnvelope reads: a header line (JSON object), then items, each a header line (JSON
// object with "type" and optional "length") and a payload of length bytes, or up to the next
// newline when length is absent.
func parseEnvelope(data []byte) (*envelope, error) {
	line, rest, err := nextLine(data)
	if err != nil {
		return nil, fmt.Errorf("envelope header: %w", err)
	}
	var hdr struct {
		EventID string `json:"event_id"`
		DSN     string `json:"dsn"`
		SentAt  string `json:"sent_at"`
	}
	if err := json.Unmarshal(line, &hdr); err != nil {
		return nil, fmt.Errorf("envelope header is not a JSON object: %v", err)
	}
	env := &envelope{eventID: hdr.EventID, dsn: hdr.DSN}
	for len(bytes.TrimSpace(rest)) > 0 {
		line, rest, err = nextLine(rest)
		if err != nil {
			return nil, fmt.Errorf("item header: %w", err)
		}
		var ih struct {
			Type   string `json:"type"`
			Length *int   `json:"length"`
		}
		if err := json.Unmarshal(line, &ih); err != nil {
			return nil, fmt.Errorf("item header is not a JSON object: %v", err)
		}
		if ih.Type == "" {
			return nil, errors.New("item header has no type")
		}
		var payload []byte
		if ih.Length != nil {
			n := *ih.Length
			if n < 0 || n > len(rest) {
				return nil, fmt.Errorf("item length %d exceeds the %d bytes left", n, len(rest))
			}
			payload, rest = rest[:n], rest[n:]
			if len(rest) > 0 {
				if rest[0] != '\n' {
					return nil, errors.New("item payload is not followed by a newline")
				}
				rest = rest[1:]
			}
		} else {
			payload, rest, _ = nextLine(rest)
		}
		if ih.Type != "event" {
			continue // transactions, client reports, attachments ...: not kept
		}
		ev, err := parseEvent(payload)
		if err != nil {
			return nil, err
		}
		if ev.EventID == "" {
			ev.EventID = hdr.EventID
		}
		env.events = append(env.events, ev)
	}
	return env, nil
}

func nextLine(b []byte) (line, rest []byte, err error) {
	i := bytes.IndexByte(b, '\n')
	if i < 0 {
		line, rest = b, nil
	} else {
		line, rest = b[:i], b[i+1:]
	}
	if len(bytes.TrimSpace(line)) == 0 {
		return nil, rest, errors.New("empty line")
	}
	return line, rest, nil
}

func parseEvent(payload []byte) (Event, error) {
	var raw struct {
		EventID  string          `json:"event_id"`
		Level    string          `json:"level"`
		Message  json.RawMessage `json:"message"`
		Logentry *struct {
			Message   string `json:"message"`
			Formatted string `json:"formatted"`
		} `json:"logentry"`
		Release     string          `json:"release"`
		Environment string          `json:"environment"`
		Tags        json.RawMessage `json:"tags"`
		Timestamp   json.RawMessage `json:"timestamp"`
	}
	if err := json.Unmarshal(payload, &raw); err != nil {
		return Event{}, fmt.Errorf("event payload is not JSON: %v", err)
	}
	ev := Event{EventID: raw.EventID, Level: raw.Level, Release: raw.Release, Environment: raw.Environment, Tags: map[string]string{}}
	if ev.Level == "" {
		ev.Level = "error" // Sentry's default for events without a level
	}
	var msg string
	if len(raw.Message) > 0 && json.Unmarshal(raw.Message, &msg) != nil {
		var m struct {
			Message   string `json:"message"`
			Formatted string `json:"formatted"`
		}
		_ = json.Unmarshal(raw.Message, &m)
		msg = m.Formatted
		if msg == "" {
			msg = m.Message
		}
	}
	if msg == "" && raw.Logentry != nil {
		msg = raw.Logentry.Formatted
		if msg == "" {
			msg = raw.Logentry.Message
		}
	}
	ev.Message = msg
	// Tags are an object, or a list of [key, value] pairs; both are valid event payloads.
	if len(raw.Tags) > 0 && string(raw.Tags) != "null" {
		var obj map[string]string
		if err := json.Unmarshal(raw.Tags, &obj); err == nil {
			ev.Tags = obj
		} else {
			var pairs [][2]string
			if err := json.Unmarshal(raw.Tags, &pairs); err != nil {
				return Event{}, fmt.Errorf("event tags are neither an object nor a list of pairs")
			}
			for _, p := range pairs {
				ev.Tags[p[0]] = p[1]
			}
		}
	}
	// The timestamp is RFC 3339 or seconds since the epoch.
	var ts string
	if json.Unmarshal(raw.Timestamp, &ts) == nil {
		ev.Timestamp, _ = time.Parse(time.RFC3339Nano, ts)
	} else if f, err := strconv.ParseFloat(string(raw.Timestamp), 64); err == nil {
		ev.Timestamp = time.Unix(0, int64(f*float64(time.Second))).UTC()
	}
	return ev, nil
}
