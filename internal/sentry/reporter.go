package sentry

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	sentrygo "github.com/getsentry/sentry-go"
)

// Reporter sends rollout events (failure, rollback, promotion) to a Sentry project through
// sentry-go. It owns a dedicated sentry-go Client and Hub, so it neither reads nor changes the
// process-wide hub. A nil *Reporter is valid and drops everything, so callers without a DSN
// can hold one unconditionally. It is safe for concurrent use.
type Reporter struct {
	client *sentrygo.Client
	hub    *sentrygo.Hub
}

// NewReporter returns a reporter for the project DSN. environment and release are attached to
// every event (an empty release lets sentry-go derive one from the build).
func NewReporter(dsn, environment, release string) (*Reporter, error) {
	dsn = strings.TrimSpace(dsn)
	if dsn == "" {
		return nil, errors.New("sentry.dsn is empty: set it to the project's DSN (Project Settings > Client Keys), like https://<key>@o0.ingest.sentry.io/<project-id>")
	}
	client, err := sentrygo.NewClient(sentrygo.ClientOptions{
		Dsn:                  dsn,
		Environment:          environment,
		Release:              release,
		SampleRate:           1.0,
		DisableClientReports: true,
		MaxBreadcrumbs:       -1,
	})
	if err != nil {
		// sentry-go's message may quote the DSN; the DSN's public key is not a secret, but a
		// legacy DSN can carry a secret key, so describe the problem without echoing it.
		return nil, fmt.Errorf("sentry.dsn is not a valid DSN (%s): copy it from Project Settings > Client Keys, like https://<key>@o0.ingest.sentry.io/<project-id>", dsnProblem(dsn))
	}
	return &Reporter{client: client, hub: sentrygo.NewHub(client, sentrygo.NewScope())}, nil
}

func dsnProblem(dsn string) string {
	u, err := url.Parse(dsn)
	switch {
	case err != nil:
		return "unparsable URL"
	case u.Scheme != "http" && u.Scheme != "https":
		return "scheme must be http or https"
	case u.User == nil || u.User.Username() == "":
		return "no public key before the @"
	case u.Host == "":
		return "no host"
	case strings.Trim(u.Path, "/") == "":
		return "no project id in the path"
	}
	return "rejected by sentry-go"
}

// Report sends one event. level is info, warning (or warn), error or fatal; anything else is
// sent as info. tags are attached as Sentry tags (release, stage, host, run_id, action ...);
// empty values are dropped. Sending is asynchronous: call Flush before the process exits.
func (r *Reporter) Report(level, message string, tags map[string]string) {
	if r == nil || r.hub == nil {
		return
	}
	ev := sentrygo.NewEvent()
	ev.Level = reportLevel(level)
	ev.Message = message
	for k, v := range tags {
		if k == "" || v == "" {
			continue
		}
		ev.Tags[k] = v
	}
	r.hub.CaptureEvent(ev)
}

func reportLevel(level string) sentrygo.Level {
	switch strings.ToLower(strings.TrimSpace(level)) {
	case "debug":
		return sentrygo.LevelDebug
	case "warning", "warn":
		return sentrygo.LevelWarning
	case "error":
		return sentrygo.LevelError
	case "fatal":
		return sentrygo.LevelFatal
	default:
		return sentrygo.LevelInfo
	}
}

// Flush waits up to timeout for queued events to be sent; false means some may be lost.
func (r *Reporter) Flush(timeout time.Duration) bool {
	if r == nil || r.client == nil {
		return true
	}
	return r.client.Flush(timeout)
}

// Close flushes for up to timeout and releases the reporter's background workers.
func (r *Reporter) Close(timeout time.Duration) bool {
	if r == nil || r.client == nil {
		return true
	}
	ok := r.client.Flush(timeout)
	r.client.Close()
	return ok
}
