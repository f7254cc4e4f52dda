package sentry

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/canaryops/terraform-provider-canary/internal/sentry/sentrytest"
)

func TestGuardSource(t *testing.T) {
	srv := newServer(t, sentrytest.Options{})
	srv.AddIssue(sentrytest.Issue{ShortID: "AGENT-9", Title: "boom", FirstSeen: deployAt.Add(time.Minute), Release: "v2", Environment: "production", Count: 4, Tags: map[string]string{"server_name": "a1"}})
	srv.AddErrorEvents(3, deployAt.Add(time.Minute), "v2", "production", map[string]string{"server_name": "a1"})
	c, _ := newClient(t, srv, nil)
	c.now = func() time.Time { return deployAt.Add(time.Hour) }
	src := GuardSource(c)
	ctx := context.Background()

	issues, err := src.NewIssues(ctx, deployAt, "v2", "server_name:a1")
	if err != nil || len(issues) != 1 {
		t.Fatalf("NewIssues = %+v, %v", issues, err)
	}
	if is := issues[0]; is.ShortID != "AGENT-9" || is.Title != "boom" || is.Count != 4 || is.Permalink == "" || !is.FirstSeen.Equal(deployAt.Add(time.Minute)) {
		t.Errorf("issue = %+v", is)
	}
	if n, err := src.ErrorCount(ctx, deployAt, deployAt.Add(time.Hour), "server_name:a1"); err != nil || n != 3 {
		t.Errorf("ErrorCount = %d, %v", n, err)
	}
	srv.FailNext(4, http.StatusServiceUnavailable, "")
	_, err = src.ErrorCount(ctx, deployAt, deployAt.Add(time.Hour), "")
	if !src.Unavailable(err) {
		t.Errorf("Unavailable(%v) = false", err)
	}
}
