package guard

import (
	"encoding/json"
	"fmt"
	"time"
)

// checkers makes an empty checker of each kind, for decoding.
var checkers = map[string]func() Checker{
	"http":    func() Checker { return &HTTP{} },
	"tcp":     func() Checker { return &TCP{} },
	"command": func() Checker { return &Command{} },
	"log":     func() Checker { return &Log{} },
	"sentry":  func() Checker { return &Sentry{} },
}

type guardJSON struct {
	Name             string          `json:"name"`
	Severity         Severity        `json:"severity,omitempty"`
	Interval         string          `json:"interval,omitempty"`
	Timeout          string          `json:"timeout,omitempty"`
	FailureThreshold int             `json:"failure_threshold,omitempty"`
	SuccessThreshold int             `json:"success_threshold,omitempty"`
	Kind             string          `json:"kind"`
	Check            json.RawMessage `json:"check"`
}

// MarshalJSON writes the guard with its check's kind, so release records can be read back by
// tools such as canary-runner. A Sentry check's connection is not written: the reader supplies it.
func (g Guard) MarshalJSON() ([]byte, error) {
	if g.Check == nil {
		return nil, fmt.Errorf("guard %q has no check", g.Name)
	}
	c, err := json.Marshal(g.Check)
	if err != nil {
		return nil, err
	}
	j := guardJSON{Name: g.Name, Severity: g.Severity, FailureThreshold: g.FailureThreshold, SuccessThreshold: g.SuccessThreshold, Kind: g.Check.Kind(), Check: c}
	if g.Interval > 0 {
		j.Interval = g.Interval.String()
	}
	if g.Timeout > 0 {
		j.Timeout = g.Timeout.String()
	}
	return json.Marshal(j)
}

// UnmarshalJSON reads what MarshalJSON wrote.
func (g *Guard) UnmarshalJSON(b []byte) error {
	var j guardJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	mk, ok := checkers[j.Kind]
	if !ok {
		return fmt.Errorf("guard %q: unknown check kind %q", j.Name, j.Kind)
	}
	c := mk()
	if err := json.Unmarshal(j.Check, c); err != nil {
		return fmt.Errorf("guard %q: %w", j.Name, err)
	}
	*g = Guard{Name: j.Name, Severity: j.Severity, FailureThreshold: j.FailureThreshold, SuccessThreshold: j.SuccessThreshold, Check: c}
	for _, d := range []struct {
		s   string
		dst *time.Duration
	}{{j.Interval, &g.Interval}, {j.Timeout, &g.Timeout}} {
		if d.s == "" {
			continue
		}
		v, err := time.ParseDuration(d.s)
		if err != nil {
			return fmt.Errorf("guard %q: %w", j.Name, err)
		}
		*d.dst = v
	}
	return nil
}
