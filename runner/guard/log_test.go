package guard

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/canaryops/terraform-provider-canary/internal/devfleet"
	sshx "github.com/canaryops/terraform-provider-canary/runner/ssh"
	"github.com/canaryops/terraform-provider-canary/runner/tmpl"
)

// countingTarget wraps a Target: it is not an SSHTarget, so the log guard reads through Exec in
// pieces, and it counts what comes back.
type countingTarget struct {
	Target
	mu    sync.Mutex
	calls int
	bytes int
}

func (c *countingTarget) Exec(ctx context.Context, cmd string, timeout time.Duration) (ExecResult, error) {
	res, err := c.Target.Exec(ctx, cmd, timeout)
	c.mu.Lock()
	c.calls++
	c.bytes += len(res.Stdout)
	c.mu.Unlock()
	return res, err
}

// localTarget runs commands on this machine, for the cases that need no SSH.
type localTarget struct {
	env []string
	dir string
}

func (l localTarget) Exec(ctx context.Context, cmd string, _ time.Duration) (ExecResult, error) {
	c := exec.CommandContext(ctx, "/bin/sh", "-c", cmd)
	c.Dir = l.dir
	c.Env = append(os.Environ(), l.env...)
	var out, errb strings.Builder
	c.Stdout, c.Stderr = &out, &errb
	err := c.Run()
	res := ExecResult{Stdout: out.String(), Stderr: errb.String()}
	if ee, ok := err.(*exec.ExitError); ok {
		res.ExitStatus = ee.ExitCode()
		err = nil
	}
	return res, err
}

func (localTarget) DialContext(context.Context, string, string) (net.Conn, error) {
	return nil, fmt.Errorf("no dialing in tests")
}

var matchedRE = regexp.MustCompile(`(\d+) lines? logged since the deploy match`)

// matched returns how many lines a result says matched.
func matched(t *testing.T, r Result) int {
	t.Helper()
	m := matchedRE.FindStringSubmatch(r.Message)
	if m == nil {
		return 0
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

func waitUntil(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func mustMark(t *testing.T, g *Log, tg Target, d tmpl.Data) any {
	t.Helper()
	if err := g.Validate(); err != nil {
		t.Fatal(err)
	}
	m, err := g.Mark(context.Background(), tg, d)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func check(g *Log, tg Target, d tmpl.Data, m any) Result {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return g.Check(ctx, tg, d, m)
}

func countLines(t *testing.T, file, substr string) int {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return strings.Count(string(b), substr)
}

func TestLogGuardOnRealHosts(t *testing.T) {
	f := devfleet.StartT(t, devfleet.Options{Hosts: 6, InitialVersion: "1.0.0", Logf: t.Logf, PanicDelay: 2 * time.Second,
		Behaviors: map[string]devfleet.Behavior{"1.1.0": devfleet.PanicLater}})
	cfg := sshx.Config{User: f.User, PrivateKey: f.ClientKey, KnownHostsFile: f.KnownHostsFile}
	ctx := context.Background()
	conn := func(t *testing.T, h *devfleet.Host) Target {
		c, err := sshx.Dial(ctx, cfg, sshx.Endpoint{Address: h.SSHAddr()})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return SSHTarget{Client: c}
	}
	run := func(t *testing.T, h *devfleet.Host, cmd string) {
		t.Helper()
		if out, err := h.Run(ctx, cmd); err != nil {
			t.Fatalf("%s: %v: %s", cmd, err, out)
		}
	}
	data := func(h *devfleet.Host, v string) tmpl.Data {
		return tmpl.Data{Version: v, Host: tmpl.Host{Name: h.Name}}
	}

	t.Run("no mark: nothing read, passes", func(t *testing.T) {
		t.Parallel()
		h := f.Hosts[0]
		g := &Log{File: "~/agent/agent.log", FailPattern: "(?i)panic"}
		r := check(g, conn(t, h), data(h, "1.0.0"), nil)
		if !r.OK || !strings.Contains(r.Message, "not read: there is no deploy baseline") {
			t.Fatalf("nil mark: %+v", r)
		}
	})

	t.Run("fail pattern and max matches", func(t *testing.T) {
		t.Parallel()
		h := f.Hosts[0]
		tg := conn(t, h)
		d := data(h, "1.1.0")
		strict := &Log{File: "~/agent/agent.log", FailPattern: "(?i)panic|fatal"}
		tolerant := &Log{File: h.AgentLogFile(), FailPattern: "^panic: ", MaxMatches: 3}
		ms, mt := mustMark(t, strict, tg, d), mustMark(t, tolerant, tg, d)
		run(t, h, "agentctl install 1.1.0")
		if r := check(strict, tg, d, ms); !r.OK || !strings.Contains(r.Message, `no line logged since the deploy matches "(?i)panic|fatal"`) {
			t.Fatalf("before the panic: %+v", r)
		}
		var r Result
		waitUntil(t, 10*time.Second, "the strict guard to fail", func() bool { r = check(strict, tg, d, ms); return !r.OK })
		if r.Pending || !strings.Contains(r.Message, `logged since the deploy match`) || !strings.Contains(r.Message, "(at most 0 allowed)") ||
			!strings.Contains(r.Evidence, "panic: simulated failure in version 1.1.0") || matched(t, r) < 1 {
			t.Fatalf("strict guard: %+v", r)
		}
		tolerated := false
		waitUntil(t, 10*time.Second, "the tolerant guard to fail", func() bool {
			r = check(tolerant, tg, d, mt)
			if r.OK && matched(t, r) >= 1 {
				tolerated = true
				if !strings.Contains(r.Message, "(3 allowed)") || !strings.Contains(r.Evidence, "panic: simulated failure") {
					t.Errorf("tolerated matches: %+v", r)
				}
			}
			return !r.OK
		})
		if !tolerated || matched(t, r) <= 3 || !strings.Contains(r.Message, "(at most 3 allowed)") {
			t.Fatalf("tolerant guard (tolerated before: %v): %+v", tolerated, r)
		}
		t.Logf("failed: %s\n%s", r.Message, r.Evidence)
	})

	t.Run("lines before the mark do not count", func(t *testing.T) {
		t.Parallel()
		h := f.Hosts[1]
		tg := conn(t, h)
		run(t, h, "agentctl install 1.1.0")
		waitUntil(t, 10*time.Second, "panic lines", func() bool { return countLines(t, h.AgentLogFile(), "panic: simulated") >= 2 })
		// Stopped before the mark, so that no panic line can land between the mark and the deploy.
		run(t, h, "agentctl stop")
		d := data(h, "1.0.0")
		g := &Log{File: "~/agent/agent.log", FailPattern: "(?i)panic", RequirePattern: "started version {{.Version}} "}
		m := mustMark(t, g, tg, d)
		run(t, h, "agentctl install 1.0.0")
		for i := 0; i < 3; i++ {
			r := check(g, tg, d, m)
			if !r.OK || !strings.Contains(r.Message, `no line logged since the deploy matches "(?i)panic"`) || !strings.Contains(r.Message, `logged "started version 1.0.0 "`) {
				t.Fatalf("check %d: %+v", i, r)
			}
			time.Sleep(300 * time.Millisecond)
		}
	})

	t.Run("require pattern", func(t *testing.T) {
		t.Parallel()
		h := f.Hosts[2]
		tg := conn(t, h)
		d := data(h, "1.2.0")
		g := &Log{File: "~/agent/agent.log", RequirePattern: "started version {{.Version}} on host"}
		late := &Log{File: "~/agent/agent.log", RequirePattern: "started version {{.Version}}", RequireWithin: 2 * time.Second}
		m := mustMark(t, g, tg, d)
		dl := data(h, "2.0.0") // never installed: never logged
		ml := mustMark(t, late, tg, dl)
		r := check(g, tg, d, m)
		if !r.Pending || r.OK || !strings.Contains(r.Message, `waiting for "started version 1.2.0 on host" (`) || !strings.Contains(r.Message, "s left)") {
			t.Fatalf("before the start: %+v", r)
		}
		run(t, h, "agentctl install 1.2.0")
		if r := check(g, tg, d, m); !r.OK || r.Pending || !strings.Contains(r.Message, `logged "started version 1.2.0 on host"`) {
			t.Fatalf("after the start: %+v", r)
		}
		if r := check(late, tg, dl, ml); !r.Pending {
			t.Fatalf("within the deadline: %+v", r)
		}
		waitUntil(t, 6*time.Second, "the deadline", func() bool { r = check(late, tg, dl, ml); return !r.Pending })
		if r.OK || !strings.Contains(r.Message, `did not log "started version 2.0.0" within 2s of the deploy`) {
			t.Fatalf("after the deadline: %+v", r)
		}
	})

	t.Run("rotation", func(t *testing.T) {
		t.Parallel()
		h := f.Hosts[3]
		tg := conn(t, h)
		d := data(h, "1.1.0")
		g := &Log{File: "~/agent/agent.log", FailPattern: "^panic: ", RequirePattern: "started version {{.Version}} "}
		m := mustMark(t, g, tg, d)
		run(t, h, "agentctl install 1.1.0 && mv ~/agent/agent.log ~/agent/agent.log.1")
		// Nothing at the path yet: the marked file is followed under its rotated name.
		if r := check(g, tg, d, m); !strings.Contains(r.Message, `logged "started version 1.1.0 "`) {
			t.Fatalf("after the rotation: %+v", r)
		}
		rotated := h.AgentLogFile() + ".1"
		waitUntil(t, 10*time.Second, "panic lines in agent.log.1", func() bool { return countLines(t, rotated, "panic: ") >= 2 })
		r := check(g, tg, d, m)
		if r.OK || matched(t, r) < 2 || !strings.Contains(r.Evidence, "panic: simulated failure in version 1.1.0") {
			t.Fatalf("lines written to the rotated file after the mark: %+v", r)
		}
		run(t, h, "kill -HUP $(cat ~/agent/agent.pid)")
		waitUntil(t, 10*time.Second, "panic lines in the new agent.log", func() bool { return countLines(t, h.AgentLogFile(), "panic: ") >= 2 })
		inOld, inNew := countLines(t, rotated, "panic: "), countLines(t, h.AgentLogFile(), "panic: ")
		r = check(g, tg, d, m)
		if r.OK || matched(t, r) < inOld+inNew {
			t.Fatalf("after reopening: %d in agent.log.1 + %d in agent.log, got %+v", inOld, inNew, r)
		}
		t.Logf("%s", r.Message)
	})

	t.Run("truncation", func(t *testing.T) {
		t.Parallel()
		h := f.Hosts[4]
		tg := conn(t, h)
		d := data(h, "1.1.0")
		g := &Log{File: h.AgentLogFile(), FailPattern: "^panic: "}
		m1, m2 := mustMark(t, g, tg, d), mustMark(t, g, tg, d)
		run(t, h, "agentctl install 1.1.0")
		for _, m := range []any{m1, m2} {
			if r := check(g, tg, d, m); !r.OK {
				t.Fatalf("before the truncation: %+v", r)
			}
		}
		off := m2.(*logMark).prog.files[0].off
		run(t, h, ": > ~/agent/agent.log")
		// Shorter than the offset: read from the start.
		waitUntil(t, 10*time.Second, "a panic line after the truncation", func() bool { return countLines(t, h.AgentLogFile(), "panic: ") >= 1 })
		if r := check(g, tg, d, m1); r.OK || matched(t, r) < 1 || !strings.Contains(r.Evidence, "panic: simulated failure") {
			t.Fatalf("after the truncation: %+v", r)
		}
		// Written again past the offset before the next check: the bytes before the offset
		// changed, so it is still read from the start.
		run(t, h, `i=0; while [ $i -lt 30 ]; do echo "panic: injected line $i"; i=$((i+1)); done >> ~/agent/agent.log`)
		if st, err := os.Stat(h.AgentLogFile()); err != nil || st.Size() <= off {
			t.Fatalf("the log did not grow past the offset %d: %v %v", off, st.Size(), err)
		}
		if r := check(g, tg, d, m2); r.OK || matched(t, r) < 31 || !strings.Contains(r.Evidence, "panic: injected line 0") {
			t.Fatalf("truncated and regrown: %+v", r)
		}
	})

	t.Run("max bytes", func(t *testing.T) {
		t.Parallel()
		h := f.Hosts[5]
		tg := conn(t, h)
		d := data(h, "1.0.0")
		small := &Log{File: "~/agent/agent.log", FailPattern: "^panic: ", MaxBytes: 4096}
		whole := &Log{File: "~/agent/agent.log", FailPattern: "^filler"}
		counted := &countingTarget{Target: tg}
		mc, ms, mw, mws := mustMark(t, small, tg, d), mustMark(t, small, tg, d), mustMark(t, whole, tg, d), mustMark(t, whole, tg, d)
		run(t, h, `{ yes 'filler line, harmless' | head -n 20000; echo 'panic: at the end'; } >> ~/agent/agent.log`)

		// Through Exec (a Target that is not an SSHTarget): the reads stay within MaxBytes.
		r := check(small, counted, d, mc)
		if r.OK || matched(t, r) != 1 || !strings.Contains(r.Evidence, "panic: at the end") ||
			!strings.Contains(r.Message, "read cut:") || !strings.Contains(r.Message, "bytes logged since the deploy were not read") {
			t.Fatalf("cut read: %+v", r)
		}
		// Besides the bytes of the log, the stat command prints four short lines.
		if counted.bytes > 4096+4*64 {
			t.Fatalf("read %d bytes in %d commands with max_bytes 4096", counted.bytes, counted.calls)
		}
		// Over SSH directly: the same, in one read.
		r = check(small, tg, d, ms)
		skipped := ms.(*logMark).prog.skipped
		if r.OK || matched(t, r) != 1 || !strings.Contains(r.Message, fmt.Sprintf("read cut: %d bytes", skipped)) || skipped < 20000*20 {
			t.Fatalf("cut read over SSH: %+v", r)
		}
		// A large read through Exec comes in pieces and loses no line at their seams.
		counted = &countingTarget{Target: tg}
		r = check(whole, counted, d, mw)
		if r.OK || matched(t, r) != 20000 || strings.Contains(r.Message, "read cut") ||
			!strings.HasSuffix(r.Evidence, "\n... and 19990 more") || strings.Count(r.Evidence, "filler line, harmless\n") != 10 || counted.calls < 10 {
			t.Fatalf("pieces (%d commands): %+v", counted.calls, r)
		}
		// Over SSH directly, in one read of more than SSH's default 64 KiB output bound.
		if r := check(whole, tg, d, mws); matched(t, r) != 20000 || strings.Contains(r.Message, "read cut") {
			t.Fatalf("one large read: %+v", r)
		}
		// Nothing new: the next check reads nothing more and keeps the totals.
		counted.bytes = 0
		if r2 := check(whole, counted, d, mw); r2.Message != r.Message || counted.bytes > 4*64 {
			t.Fatalf("second check read %d bytes: %+v", counted.bytes, r2)
		}
	})
}

// Cases that need no SSH run against this machine's sh.
func TestLogGuardLocal(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	// The path is quoted: a space, a quote and a command substitution are only characters.
	file := filepath.Join(dir, "my app's $(touch pwned).log")
	tg := localTarget{dir: dir}
	t.Cleanup(func() {
		if _, err := os.Stat(filepath.Join(dir, "pwned")); err == nil {
			t.Error("the file name ran a command")
		}
	})
	d := tmpl.Data{Version: "1.0.0"}
	appendLog := func(s string) {
		fh, err := os.OpenFile(file, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		defer fh.Close()
		if _, err := fh.WriteString(s); err != nil {
			t.Fatal(err)
		}
	}

	t.Run("partial lines wait for their end", func(t *testing.T) {
		g := &Log{File: file, FailPattern: `^panic: partial$`}
		m := mustMark(t, g, tg, d)
		appendLog("panic: par")
		if r := check(g, tg, d, m); !r.OK {
			t.Fatalf("half a line: %+v", r)
		}
		appendLog("tial\n")
		if r := check(g, tg, d, m); r.OK || matched(t, r) != 1 || r.Evidence != "panic: partial" {
			t.Fatalf("whole line: %+v", r)
		}
	})

	t.Run("missing file", func(t *testing.T) {
		g := &Log{File: filepath.Join(dir, "later.log"), FailPattern: "panic", RequireWithin: time.Second}
		m := mustMark(t, g, tg, d)
		if r := check(g, tg, d, m); !r.Pending || !strings.Contains(r.Message, "waiting for the file to appear") {
			t.Fatalf("missing, within the deadline: %+v", r)
		}
		var r Result
		waitUntil(t, 5*time.Second, "the deadline", func() bool { r = check(g, tg, d, m); return !r.Pending })
		if r.OK || !strings.Contains(r.Message, "the file does not exist or cannot be read 1s after the deploy") {
			t.Fatalf("missing after the deadline: %+v", r)
		}
		if err := os.WriteFile(filepath.Join(dir, "later.log"), []byte("panic: now\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		if r := check(g, tg, d, m); r.OK || matched(t, r) != 1 {
			t.Fatalf("created after the mark: %+v", r)
		}
	})

	t.Run("rotated to .0 with nothing at the path", func(t *testing.T) {
		f2 := filepath.Join(dir, "r.log")
		if err := os.WriteFile(f2, []byte("old panic before the mark\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		g := &Log{File: f2, FailPattern: "panic"}
		m := mustMark(t, g, tg, d)
		fh, err := os.OpenFile(f2, os.O_WRONLY|os.O_APPEND, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer fh.Close()
		if err := os.Rename(f2, f2+".0"); err != nil {
			t.Fatal(err)
		}
		if _, err := fh.WriteString("panic after the rotation\n"); err != nil {
			t.Fatal(err)
		}
		if r := check(g, tg, d, m); r.OK || matched(t, r) != 1 || r.Evidence != "panic after the rotation" {
			t.Fatalf("rotated: %+v", r)
		}
	})
}

func TestLogValidate(t *testing.T) {
	for _, tc := range []struct {
		g    Log
		want string
	}{
		{Log{File: "/var/log/a.log", FailPattern: "(?i)panic|fatal("}, `log.fail_pattern: "(?i)panic|fatal(" is not a valid regular expression: missing closing ): ` + "`(?i)panic|fatal(`"},
		{Log{File: "/var/log/a.log", RequirePattern: "started [{{.Version}}"}, `log.require_pattern: "started [{{.Version}}" is not a valid regular expression: missing closing ]`},
		{Log{File: "/a", JournalUnit: "agent", FailPattern: "x"}, "log: set either file or journal_unit, not both"},
		{Log{FailPattern: "x"}, "log: set file (a log file on the host) or journal_unit"},
		{Log{File: "var/log/a.log", FailPattern: "x"}, `log.file "var/log/a.log" must be an absolute path or start with ~/`},
		{Log{File: "~alice/a.log", FailPattern: "x"}, "must be an absolute path or start with ~/"},
		{Log{File: "/var/log/", FailPattern: "x"}, "names a directory"},
		{Log{File: "/var/log/a.log"}, "log: set fail_pattern or require_pattern"},
		{Log{JournalUnit: "agent"}, "log: set fail_pattern or require_pattern"},
		{Log{File: "/var/log/{{.Nope}}.log", FailPattern: "x"}, "log.file: template"},
		{Log{JournalUnit: "agent-{{.Nope}}", FailPattern: "x"}, "log.journal_unit: template"},
		{Log{File: "/a", FailPattern: "{{.Version"}, "log.fail_pattern: template syntax"},
		{Log{File: "/a", FailPattern: "x", MaxMatches: -1}, "log.max_matches: -1 is negative"},
		{Log{File: "/a", FailPattern: "x", RequireWithin: -time.Second}, "log.require_within: -1s is negative"},
		{Log{File: "/a", FailPattern: "x", MaxBytes: 10}, "log.max_bytes: 10 is too small"},
	} {
		err := tc.g.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: got %v, want %q", tc.g, err, tc.want)
		}
	}
	for _, g := range []Log{
		{File: "~/agent/agent.log", FailPattern: "(?i)panic|fatal"},
		{File: "{{.Host.Vars.log}}", FailPattern: "error on {{.Host.Vars.name}}"},
		{JournalUnit: "agent@{{.Host.Name}}.service", RequirePattern: "started version {{.Version}}", RequireWithin: time.Minute},
	} {
		if err := g.Validate(); err != nil {
			t.Errorf("%+v: %v", g, err)
		}
	}
	// Wrapped by Guard.Validate with the guard's name.
	err := Guard{Name: "logs", Check: &Log{File: "/a", FailPattern: "("}}.Validate()
	if err == nil || !strings.HasPrefix(err.Error(), `guard "logs": log.fail_pattern: "(" is not a valid regular expression`) {
		t.Errorf("guard: %v", err)
	}
}

func TestLogPatternQuotesValues(t *testing.T) {
	p, err := renderLogPattern("log.require_pattern", "^started version {{.Version}} on {{.Host.Vars.x}}$",
		tmpl.Data{Version: "1.2.0+b(1)", Host: tmpl.Host{Vars: map[string]string{"x": "a|b"}}})
	if err != nil {
		t.Fatal(err)
	}
	if !p.re.MatchString("started version 1.2.0+b(1) on a|b") || p.re.MatchString("started version 1x2x0+b(1) on a|b") || p.re.MatchString("started version 1.2.0+b(1) on b") {
		t.Fatalf("values not matched literally: %s", p.re)
	}
	if p.display != "^started version 1.2.0+b(1) on a|b$" {
		t.Fatalf("display %q", p.display)
	}
}

func TestLogEvidenceLineCut(t *testing.T) {
	long := strings.Repeat("é", 400)
	got := logEvidenceLine([]byte(long))
	if got != strings.Repeat("é", 300)+"…" {
		t.Fatalf("cut to %d runes", len([]rune(got)))
	}
	if s := fmtLogDuration(90 * time.Second); s != "1m30s" {
		t.Fatal(s)
	}
	if s := fmtLogDuration(2 * time.Minute); s != "2m" {
		t.Fatal(s)
	}
	if s := fmtLogDuration(time.Hour); s != "1h" {
		t.Fatal(s)
	}
}

// journald is not running here: the command is checked as text, and run through sh with a fake
// journalctl to show that a hostile unit name arrives as one argument.
func TestJournalCommand(t *testing.T) {
	unit := `x'; touch pwned; echo '$(id)`
	got := journalCommand(unit, 1700000000, "", 1024)
	want := `date +%s; { journalctl --unit='x'\''; touch pwned; echo '\''$(id)' --since=@1700000000 -o cat --no-pager -q --show-cursor; echo "-- exit $?"; } | tail -c 1025`
	if got != want {
		t.Fatalf("command:\n got %s\nwant %s", got, want)
	}
	got = journalCommand("agent.service", 1700000000, "s=ab;i=1f;b=c", 1<<20)
	want = `date +%s; { journalctl --unit=agent.service --after-cursor='s=ab;i=1f;b=c' -o cat --no-pager -q --show-cursor; echo "-- exit $?"; } | tail -c 1048577`
	if got != want {
		t.Fatalf("command with a cursor:\n got %s\nwant %s", got, want)
	}

	bin := t.TempDir()
	fake := `#!/bin/sh
for a in "$@"; do printf 'arg:%s\n' "$a"; done
echo "-- cursor: s=1;i=2"
exit 0
`
	if err := os.WriteFile(filepath.Join(bin, "journalctl"), []byte(fake), 0o755); err != nil {
		t.Fatal(err)
	}
	tg := localTarget{env: []string{"PATH=" + bin + ":" + os.Getenv("PATH")}}
	res, err := runLogScript(context.Background(), tg, "cd "+sshx.Quote(bin)+"; "+journalCommand(unit, 1700000000, "", 4096), 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(bin, "pwned")); err == nil {
		t.Fatal("the unit name ran a command")
	}
	j, err := parseJournal(res.Stdout, 4096)
	if err != nil {
		t.Fatal(err)
	}
	if j.exit != 0 || j.cursor != "s=1;i=2" || j.cut || !strings.HasPrefix(string(j.body), "arg:--unit="+unit+"\narg:--since=@1700000000\narg:-o\n") {
		t.Fatalf("journal output %+v", j)
	}

	// Through the guard, with the fake journalctl printing messages.
	fake = `#!/bin/sh
case "$*" in *--after-cursor=c1*) echo "panic: second"; echo "-- cursor: c2";; *) echo "started version 1.0.0"; echo "panic: first"; echo "-- cursor: c1";; esac
`
	if err := os.WriteFile(filepath.Join(bin, "journalctl"), []byte(fake), 0o755); err != nil {
		t.Fatal(err)
	}
	g := &Log{JournalUnit: "agent", FailPattern: "^panic", RequirePattern: "started version {{.Version}}"}
	d := tmpl.Data{Version: "1.0.0"}
	m := mustMark(t, g, tg, d)
	if r := check(g, tg, d, m); r.OK || matched(t, r) != 1 || !strings.Contains(r.Message, `journal of unit "agent": `) || !strings.Contains(r.Message, `logged "started version 1.0.0"`) {
		t.Fatalf("journal first check: %+v", r)
	}
	if r := check(g, tg, d, m); matched(t, r) != 2 || r.Evidence != "panic: first\npanic: second" || m.(*logMark).prog.cursor != "c2" {
		t.Fatalf("journal second check: %+v", r)
	}
}

func TestParseJournal(t *testing.T) {
	for _, tc := range []struct {
		out    string
		limit  int
		body   string
		cursor string
		exit   int
		cut    bool
	}{
		{"1700000000\n-- exit 0\n", 100, "", "", 0, false},
		{"1700000000\na\nb\n-- cursor: s=1\n-- exit 0\n", 100, "a\nb\n", "s=1", 0, false},
		{"1700000000\n-- cursor: s=1\n-- exit 0\n", 100, "", "s=1", 0, false},
		{"1700000000\n-- exit 1\n", 100, "", "", 1, false},
		// More than the limit of 20 bytes: cut, and the first (partial) line dropped.
		{"1700000000\nrtial\nwhole\n-- exit 0\n", 20, "whole\n", "", 0, true},
	} {
		j, err := parseJournal(tc.out, tc.limit)
		if err != nil || string(j.body) != tc.body || j.cursor != tc.cursor || j.exit != tc.exit || j.cut != tc.cut || j.now != 1700000000 {
			t.Errorf("%q: %+v %v", tc.out, j, err)
		}
	}
	if _, err := parseJournal("1700000000\nno trailer\n", 100); err == nil {
		t.Error("no exit status: no error")
	}
}
