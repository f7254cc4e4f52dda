package runner

import (
	"time"

	"github.com/hashicorp/go-hclog"
)

// Event is one step of a rollout, for logs, the ledger and Sentry. Events never carry secrets.
type Event struct {
	Time     time.Time
	RunID    string
	Release  string
	Stage    string
	Host     string
	Action   string // connect, lock, probe, preflight, deploy, verify, observe, guard, promote, revert, rollback, halt, interrupt, done
	Result   string // started, ok, failed, skipped, warning
	Message  string
	Evidence string
}

func (x *execution) emit(ev Event) {
	ev.Time = x.now()
	ev.RunID = x.runID
	ev.Release = x.spec.Release
	args := []any{"release", ev.Release, "action", ev.Action, "result", ev.Result}
	if ev.Stage != "" {
		args = append(args, "stage", ev.Stage)
	}
	if ev.Host != "" {
		args = append(args, "host", ev.Host)
	}
	if ev.Evidence != "" {
		args = append(args, "evidence", ev.Evidence)
	}
	level := hclog.Info
	switch ev.Result {
	case "failed":
		level = hclog.Error
	case "warning":
		level = hclog.Warn
	case "started":
		level = hclog.Debug
	}
	x.log.Log(level, ev.Message, args...)
	if x.r.OnEvent != nil {
		x.evMu.Lock()
		defer x.evMu.Unlock()
		x.r.OnEvent(ev)
	}
}
