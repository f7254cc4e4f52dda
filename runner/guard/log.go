package guard

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"text/template"
	"time"
	"unicode/utf8"

	sshx "github.com/canaryops/terraform-provider-canary/runner/ssh"
	"github.com/canaryops/terraform-provider-canary/runner/tmpl"
)

// Log watches what a host logged since it was deployed: a log file, or a systemd unit's journal,
// read over the host's SSH connection with POSIX sh and coreutils (stat, tail, head, date) or
// journalctl. It fails when more than MaxMatches lines since the deploy match FailPattern, and when
// RequirePattern has not appeared within RequireWithin of the deploy (before that it is Pending).
//
// The baseline is taken by Mark just before the deploy: for a file its identity (device:inode), its
// size and a fingerprint of its last bytes; for the journal the host's clock. Each Check then reads
// only what is new since the previous Check on that mark and keeps running totals in the mark, so
// a check costs what was logged since the last one, not since the deploy:
//   - the same file, grown: read from the previous offset;
//   - the same file, shorter, or its bytes before the offset changed (copytruncate, even when the
//     file has grown back past the offset since): read it from the start;
//   - another file at the path (rotated): read the rest of the previous file if it is found as
//     <file>.1 or <file>.0 (logrotate's names), then the new file from the start. The rotated-away
//     file keeps being followed while it keeps one of those names, so lines its writer adds before
//     reopening the log are counted too.
//
// One check reads at most MaxBytes. When more was logged between two checks, the newest MaxBytes
// are read and the rest is skipped and reported in the message: a guard is about current health.
//
// A nil mark (preflight, before any deploy on the host) passes without reading: a log has no "now"
// without a baseline, and the lines at its end may be hours old (for instance the panics of a
// release that was just rolled back), which would block every later release as "unhealthy before
// the release". Health before the release is the job of the http, tcp and command guards.
//
// Patterns are matched against each line (without its newline). Values substituted into a pattern
// are regexp-quoted, so "started version {{.Version}}" matches the version's dots literally.
type Log struct {
	File           string        // template; absolute path or ~/path of a log file on the host
	JournalUnit    string        // template; a systemd unit read with journalctl (exactly one of File / JournalUnit)
	FailPattern    string        // template, then an RE2 regexp; values substituted are regexp-quoted
	MaxMatches     int           // fail when more than this many lines since the deploy match FailPattern
	RequirePattern string        // template+regexp that must appear since the deploy...
	RequireWithin  time.Duration // ...within this long after the deploy (default 30s); Pending until then. Also how long a missing file is waited for
	MaxBytes       int           // bound on what one check reads from the host (default 1 MiB)
}

// Defaults and limits of the log guard.
const (
	DefaultLogRequireWithin = 30 * time.Second
	DefaultLogMaxBytes      = 1 << 20
	MinLogMaxBytes          = 1 << 10

	logEvidenceLines    = 10  // matching lines kept as evidence
	logEvidenceLineRune = 300 // each cut to this many characters
	logFingerprint      = 64  // bytes before a file offset kept to recognise the same content
	// logGenericChunk bounds the output of one command on a Target other than SSHTarget, whose
	// output limit is unknown (SSHTarget.Exec keeps 64 KiB; more is cut in the middle).
	logGenericChunk = 32 << 10
)

func (l *Log) Kind() string { return "log" }

func (l *Log) requireWithin() time.Duration {
	if l.RequireWithin > 0 {
		return l.RequireWithin
	}
	return DefaultLogRequireWithin
}

func (l *Log) maxBytes() int {
	if l.MaxBytes > 0 {
		return l.MaxBytes
	}
	return DefaultLogMaxBytes
}

func (l *Log) Validate() error {
	file, unit := strings.TrimSpace(l.File) != "", strings.TrimSpace(l.JournalUnit) != ""
	switch {
	case file && unit:
		return errors.New("log: set either file or journal_unit, not both")
	case !file && !unit:
		return errors.New("log: set file (a log file on the host) or journal_unit (a systemd unit read with journalctl)")
	}
	if file {
		if err := tmpl.Validate(l.File, false); err != nil {
			return fmt.Errorf("log.file: %w", err)
		}
		// A path that starts with a value ({{.Host.Vars.log}}) is checked when rendered for a host.
		if !strings.HasPrefix(l.File, "{{") {
			if err := checkLogPath(l.File); err != nil {
				return err
			}
		}
	}
	if unit {
		if err := tmpl.Validate(l.JournalUnit, false); err != nil {
			return fmt.Errorf("log.journal_unit: %w", err)
		}
	}
	if strings.TrimSpace(l.FailPattern) == "" && strings.TrimSpace(l.RequirePattern) == "" {
		return errors.New("log: set fail_pattern or require_pattern (or both)")
	}
	for _, p := range []struct{ field, text string }{{"log.fail_pattern", l.FailPattern}, {"log.require_pattern", l.RequirePattern}} {
		if p.text == "" {
			continue
		}
		if err := tmpl.Validate(p.text, false); err != nil {
			return fmt.Errorf("%s: %w", p.field, err)
		}
		s, err := renderLogSample(p.text)
		if err != nil {
			return fmt.Errorf("%s: %w", p.field, err)
		}
		if _, err := regexp.Compile(s); err != nil {
			return fmt.Errorf("%s: %q is not a valid regular expression: %s", p.field, p.text, logRegexpErr(err))
		}
	}
	if l.MaxMatches < 0 {
		return fmt.Errorf("log.max_matches: %d is negative; 0 fails on the first matching line", l.MaxMatches)
	}
	if l.RequireWithin < 0 {
		return fmt.Errorf("log.require_within: %s is negative", l.RequireWithin)
	}
	if l.MaxBytes != 0 && l.MaxBytes < MinLogMaxBytes {
		return fmt.Errorf("log.max_bytes: %d is too small; use at least %d (default %d)", l.MaxBytes, MinLogMaxBytes, DefaultLogMaxBytes)
	}
	return nil
}

func checkLogPath(p string) error {
	switch {
	case strings.ContainsRune(p, 0):
		return fmt.Errorf("log.file %q contains a NUL byte", p)
	case !strings.HasPrefix(p, "/") && !strings.HasPrefix(p, "~/"):
		return fmt.Errorf("log.file %q must be an absolute path or start with ~/ (the login user's home)", p)
	case strings.HasSuffix(p, "/"):
		return fmt.Errorf("log.file %q names a directory, not a file", p)
	}
	return nil
}

func logRegexpErr(err error) string {
	return strings.TrimPrefix(err.Error(), "error parsing regexp: ")
}

// logPatternSample stands in for the values when a pattern is checked before any host is known;
// Host.Vars keys are unknown then and render empty.
var logPatternSample = tmpl.Data{
	Version: "1.0.0", PreviousVersion: "0.9.0", Release: "r", Fleet: "f", Stage: "canary", RunID: "run",
	Host: tmpl.Host{Name: "h", Address: "127.0.0.1"},
}

func renderLogSample(text string) (string, error) {
	t, err := template.New("p").Option("missingkey=zero").Parse(text)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	if err := t.Execute(&b, quoteMetaData(logPatternSample)); err != nil {
		return "", err
	}
	return b.String(), nil
}

// quoteMetaData returns d with every string value regexp-quoted.
func quoteMetaData(d tmpl.Data) tmpl.Data {
	q := regexp.QuoteMeta
	out := tmpl.Data{
		Version: q(d.Version), PreviousVersion: q(d.PreviousVersion), Release: q(d.Release), Fleet: q(d.Fleet),
		Stage: q(d.Stage), RunID: q(d.RunID), DeployedAt: d.DeployedAt,
		Host: tmpl.Host{Name: q(d.Host.Name), Address: q(d.Host.Address)},
	}
	if d.Host.Vars != nil {
		out.Host.Vars = make(map[string]string, len(d.Host.Vars))
		for k, v := range d.Host.Vars {
			out.Host.Vars[k] = q(v)
		}
	}
	return out
}

// logPattern is a pattern rendered for a host: the regexp, and the text shown to operators (the
// template rendered without quoting, easier to read than the quoted regexp).
type logPattern struct {
	re      *regexp.Regexp
	display string
}

func renderLogPattern(field, text string, d tmpl.Data) (*logPattern, error) {
	if text == "" {
		return nil, nil
	}
	src, err := tmpl.Render(text, quoteMetaData(d))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", field, err)
	}
	re, err := regexp.Compile(src)
	if err != nil {
		return nil, fmt.Errorf("%s: %q is not a valid regular expression: %s", field, src, logRegexpErr(err))
	}
	display, err := tmpl.Render(text, d)
	if err != nil {
		display = src
	}
	return &logPattern{re: re, display: display}, nil
}

// logSource is where a check reads: a file (path as rendered, and as a shell word with ~/
// expanded remotely) or a journald unit.
type logSource struct {
	path, pathExpr string
	unit           string
}

func (s logSource) String() string {
	if s.unit != "" {
		return "journal of unit " + strconv.Quote(s.unit)
	}
	return s.path
}

func (l *Log) source(d tmpl.Data) (logSource, error) {
	if l.JournalUnit != "" {
		u, err := tmpl.Render(l.JournalUnit, d)
		if err != nil {
			return logSource{}, fmt.Errorf("log.journal_unit: %w", err)
		}
		if strings.TrimSpace(u) == "" || strings.ContainsRune(u, 0) {
			return logSource{}, fmt.Errorf("log.journal_unit %q renders to %q, not a unit name", l.JournalUnit, u)
		}
		return logSource{unit: u}, nil
	}
	p, err := tmpl.Render(l.File, d)
	if err != nil {
		return logSource{}, fmt.Errorf("log.file: %w", err)
	}
	if err := checkLogPath(p); err != nil {
		return logSource{}, err
	}
	return logSource{path: p, pathExpr: logShellPath(p)}, nil
}

// logShellPath is p as one shell word, "~/" expanded on the host with "$HOME".
func logShellPath(p string) string {
	if rest, ok := strings.CutPrefix(p, "~/"); ok {
		return `"$HOME"/` + sshx.Quote(rest)
	}
	return sshx.Quote(p)
}

// logMark is the baseline Mark takes on a host and the progress Checks make from it. It lives in
// memory only (the runner keeps it for the rollout); the mutex serialises Checks on one host.
type logMark struct {
	journal bool
	at      int64      // the host's clock at the mark, Unix seconds
	start   logFilePos // the file at the mark

	mu   sync.Mutex
	prog *logProgress // nil until the first Check
}

// logFilePos is a file being followed: its identity ("dev:ino", "" when there was no file), the
// offset read up to, and the bytes just before that offset (to recognise a file that was
// truncated and written again past the offset).
type logFilePos struct {
	id     string
	off    int64
	before string
	// midLine: off may be inside a line (the bytes before it were skipped unread).
	midLine bool
}

// logProgress is what the Checks on one mark have seen so far.
type logProgress struct {
	key      string       // the rendered source and patterns the totals are for
	files    []logFilePos // files followed: the one at the path and a rotated-away one
	cursor   string       // journald: the cursor after the last entry read
	matches  int
	evidence []string // the first matching lines
	required bool
	skipped  int64 // bytes logged since the mark that were not read (more than MaxBytes at once)
	cuts     int   // checks that could not read everything
}

func (p *logProgress) clone() *logProgress {
	c := *p
	c.files = append([]logFilePos(nil), p.files...)
	c.evidence = append([]string(nil), p.evidence...)
	return &c
}

// Mark takes the baseline just before the deploy: the file's identity, size and last bytes and the
// host's clock, in one command; for a journal the host's clock.
func (l *Log) Mark(ctx context.Context, t Target, d tmpl.Data) (any, error) {
	src, err := l.source(d)
	if err != nil {
		return nil, err
	}
	if src.unit != "" {
		res, err := runLogScript(ctx, t, "date +%s", 256)
		if err != nil {
			return nil, fmt.Errorf("reading the host's clock: %w", err)
		}
		at, err := parseHostEpoch(strings.TrimSpace(res.Stdout))
		if err != nil || res.ExitStatus != 0 {
			return nil, fmt.Errorf("reading the host's clock: date +%%s exited %d: %s", res.ExitStatus, strings.TrimSpace(res.Stdout+" "+res.Stderr))
		}
		return &logMark{journal: true, at: at}, nil
	}
	res, err := runLogScript(ctx, t, logMarkScript(src.pathExpr), 1024)
	if err != nil {
		return nil, fmt.Errorf("taking the size of %s: %w", src.path, err)
	}
	m, err := parseLogMark(res.Stdout)
	if err != nil || res.ExitStatus != 0 {
		return nil, fmt.Errorf("taking the size of %s: exit %d: %v: %s", src.path, res.ExitStatus, err, strings.TrimSpace(res.Stderr))
	}
	return m, nil
}

// logMarkScript prints the file's "dev:ino size" ("- 0" when it does not exist), the host's clock,
// then up to logFingerprint bytes before the end of the file.
func logMarkScript(pathExpr string) string {
	return "f=" + pathExpr + `; if s=$(stat -L -c '%d:%i %s' -- "$f" 2>/dev/null); then ` +
		`echo "$s"; date +%s; n=${s#* }; k=` + strconv.Itoa(logFingerprint) + `; [ "$n" -lt "$k" ] && k=$n; ` +
		`tail -c +$((n-k+1)) -- "$f" 2>/dev/null | head -c "$k"; ` +
		`else echo '- 0'; date +%s; fi`
}

func parseLogMark(out string) (*logMark, error) {
	line1, rest, ok1 := strings.Cut(out, "\n")
	line2, before, ok2 := strings.Cut(rest, "\n")
	if !ok1 || !ok2 {
		return nil, fmt.Errorf("unexpected output %q", Bound(out, 200))
	}
	st, err := parseLogStat(line1)
	if err != nil {
		return nil, err
	}
	at, err := parseHostEpoch(line2)
	if err != nil {
		return nil, err
	}
	if int64(len(before)) > st.size || len(before) > logFingerprint {
		before = "" // the file changed between stat and tail: no fingerprint
	}
	return &logMark{at: at, start: logFilePos{id: st.id, off: st.size, before: before}}, nil
}

type logStat struct {
	id   string // "" when the file does not exist
	size int64
}

func parseLogStat(line string) (logStat, error) {
	id, size, ok := strings.Cut(strings.TrimSpace(line), " ")
	n, err := strconv.ParseInt(size, 10, 64)
	if !ok || err != nil || n < 0 || id == "" {
		return logStat{}, fmt.Errorf("unexpected stat output %q", line)
	}
	if id == "-" {
		return logStat{}, nil
	}
	return logStat{id: id, size: n}, nil
}

func parseHostEpoch(s string) (int64, error) {
	n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("unexpected output of date +%%s: %q", s)
	}
	return n, nil
}

func (l *Log) Check(ctx context.Context, t Target, d tmpl.Data, mark any) Result {
	src, err := l.source(d)
	if err != nil {
		return Result{Message: err.Error()}
	}
	if mark == nil {
		return Result{OK: true, Message: fmt.Sprintf("%s: not read: there is no deploy baseline on this host yet, and only lines logged after a deploy are judged", src)}
	}
	m, ok := mark.(*logMark)
	if !ok || m.journal != (src.unit != "") {
		return Result{Message: fmt.Sprintf("%s: the baseline (%T) was not taken by this log guard", src, mark)}
	}
	fail, err := renderLogPattern("log.fail_pattern", l.FailPattern, d)
	if err != nil {
		return Result{Message: err.Error()}
	}
	require, err := renderLogPattern("log.require_pattern", l.RequirePattern, d)
	if err != nil {
		return Result{Message: err.Error()}
	}
	key := src.String()
	for _, p := range []*logPattern{fail, require} {
		key += "\x00"
		if p != nil {
			key += p.re.String()
		}
	}

	m.mu.Lock()
	defer m.mu.Unlock()
	// Totals are for one rendering of the patterns; should it change (other values), start over
	// from the mark.
	if m.prog == nil || m.prog.key != key {
		m.prog = &logProgress{key: key, files: []logFilePos{m.start}}
	}
	// Work on a copy: a check that cannot read leaves the progress as it was.
	next := m.prog.clone()
	sc := &logScanner{fail: fail, require: require, prog: next}
	var now int64
	var missing bool
	if m.journal {
		now, err = l.readJournal(ctx, t, src, m, next, sc)
	} else {
		now, missing, err = l.readFile(ctx, t, src, next, sc)
	}
	if err != nil {
		return Result{Message: fmt.Sprintf("%s: %v", src, err), Evidence: err.Error()}
	}
	m.prog = next
	return l.judge(src, m.at, now, missing, fail, require, next)
}

// logScanner counts the lines read in one check into the progress.
type logScanner struct {
	fail, require *logPattern
	prog          *logProgress
}

func (s *logScanner) scan(data []byte) {
	for len(data) > 0 {
		line := data
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			line, data = data[:i], data[i+1:]
		} else {
			data = nil
		}
		line = bytes.TrimSuffix(line, []byte("\r"))
		if s.fail != nil && s.fail.re.Match(line) {
			s.prog.matches++
			if len(s.prog.evidence) < logEvidenceLines {
				s.prog.evidence = append(s.prog.evidence, logEvidenceLine(line))
			}
		}
		if s.require != nil && !s.prog.required && s.require.re.Match(line) {
			s.prog.required = true
		}
	}
}

func logEvidenceLine(b []byte) string {
	s := strings.ToValidUTF8(string(b), "\uFFFD")
	if utf8.RuneCountInString(s) <= logEvidenceLineRune {
		return s
	}
	n := 0
	for i := range s {
		if n == logEvidenceLineRune {
			return s[:i] + "…"
		}
		n++
	}
	return s
}

// judge turns the totals into a Result.
func (l *Log) judge(src logSource, at, now int64, missing bool, fail, require *logPattern, p *logProgress) Result {
	var parts []string
	failed, pending := false, false
	// The host's clock has whole seconds: the deadline errs late, never early.
	left := at + int64((l.requireWithin()+time.Second-1)/time.Second) + 1 - now
	if missing {
		if left > 0 {
			pending = true
			parts = append(parts, fmt.Sprintf("waiting for the file to appear (%ds left)", left))
		} else {
			failed = true
			parts = append(parts, fmt.Sprintf("the file does not exist or cannot be read %s after the deploy", fmtLogDuration(l.requireWithin())))
		}
	}
	if fail != nil {
		switch n := p.matches; {
		case n > l.MaxMatches:
			failed = true
			parts = append(parts, fmt.Sprintf("%s logged since the deploy %s %q (at most %d allowed)", logLineCount(n), logMatchVerb(n), fail.display, l.MaxMatches))
		case n == 0:
			parts = append(parts, fmt.Sprintf("no line logged since the deploy matches %q", fail.display))
		default:
			parts = append(parts, fmt.Sprintf("%s logged since the deploy %s %q (%d allowed)", logLineCount(n), logMatchVerb(n), fail.display, l.MaxMatches))
		}
	}
	if require != nil {
		switch {
		case p.required:
			parts = append(parts, fmt.Sprintf("logged %q", require.display))
		case missing:
			// said above
		case left > 0:
			pending = true
			parts = append(parts, fmt.Sprintf("waiting for %q (%ds left)", require.display, left))
		default:
			failed = true
			parts = append(parts, fmt.Sprintf("did not log %q within %s of the deploy", require.display, fmtLogDuration(l.requireWithin())))
		}
	}
	if p.cuts > 0 {
		if p.skipped > 0 {
			parts = append(parts, fmt.Sprintf("read cut: %d bytes logged since the deploy were not read (more than max_bytes=%d arrived between two checks)", p.skipped, l.maxBytes()))
		} else {
			parts = append(parts, fmt.Sprintf("read cut: some lines logged since the deploy were not read (more than max_bytes=%d arrived between two checks)", l.maxBytes()))
		}
	}
	var ev strings.Builder
	for i, line := range p.evidence {
		if i > 0 {
			ev.WriteByte('\n')
		}
		ev.WriteString(line)
	}
	if more := p.matches - len(p.evidence); more > 0 {
		fmt.Fprintf(&ev, "\n... and %d more", more)
	}
	r := Result{Message: src.String() + ": " + strings.Join(parts, "; "), Evidence: ev.String()}
	switch {
	case failed:
	case pending:
		r.Pending = true
	default:
		r.OK = true
	}
	return r
}

func logLineCount(n int) string {
	if n == 1 {
		return "1 line"
	}
	return strconv.Itoa(n) + " lines"
}

func logMatchVerb(n int) string {
	if n == 1 {
		return "matches"
	}
	return "match"
}

// fmtLogDuration writes 30s, 2m, 1m30s, 1h rather than 2m0s, 1h0m0s.
func fmtLogDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// ---- files ----

// logSuffixes are the names a file is looked for under: the path, then logrotate's usual names
// for the file rotated away (<file>.1, and <file>.0 with "start 0").
var logSuffixes = []string{"", ".1", ".0"}

// logStatScript prints "dev:ino size" (or "- 0") for each of the path's names, then the host's clock.
func logStatScript(pathExpr string) string {
	return "f=" + pathExpr + `; for p in "$f" "$f.1" "$f.0"; do stat -L -c '%d:%i %s' -- "$p" 2>/dev/null || echo '- 0'; done; date +%s`
}

// logReadScript prints n bytes of the file from offset from (0-based), after checking it is still
// the file with identity id (exit 3 otherwise) and that it can be read (exit 4).
func logReadScript(pathExpr, id string, from, n int64) string {
	return "f=" + pathExpr + `; [ "$(stat -L -c %d:%i -- "$f" 2>/dev/null)" = ` + sshx.Quote(id) + ` ] || exit 3; ` +
		`[ -r "$f" ] || { echo "cannot read $f" >&2; exit 4; }; ` +
		`tail -c +` + strconv.FormatInt(from+1, 10) + ` -- "$f" | head -c ` + strconv.FormatInt(n, 10)
}

// logSpan is a part of one file to read in this check.
type logSpan struct {
	suffix   string
	id       string
	from, to int64  // the new bytes
	before   string // fingerprint expected just before from ("" when none)
	midLine  bool
	readFrom int64 // from, or later when the budget is short
}

var errLogReplaced = errors.New("the file was replaced while it was read")

// readFile reads what was appended to the followed files since the last check, scans it, and
// advances p. It returns the host's clock and whether there is no file at all to read.
func (l *Log) readFile(ctx context.Context, t Target, src logSource, p *logProgress, sc *logScanner) (int64, bool, error) {
	var lastErr error
	// A file replaced between stat and read (a rotation at that moment) is re-planned once.
	for attempt := 0; attempt < 2; attempt++ {
		res, err := runLogScript(ctx, t, logStatScript(src.pathExpr), 1024)
		if err != nil {
			return 0, false, err
		}
		lines := strings.Split(strings.TrimSuffix(res.Stdout, "\n"), "\n")
		if res.ExitStatus != 0 || len(lines) != len(logSuffixes)+1 {
			return 0, false, fmt.Errorf("stat exited %d: %s", res.ExitStatus, Bound(strings.TrimSpace(res.Stdout+"\n"+res.Stderr), 400))
		}
		stats := make([]logStat, len(logSuffixes))
		for i := range logSuffixes {
			if stats[i], err = parseLogStat(lines[i]); err != nil {
				return 0, false, err
			}
		}
		now, err := parseHostEpoch(lines[len(logSuffixes)])
		if err != nil {
			return 0, false, err
		}
		trial := p.clone()
		missing, err := l.readLogSpans(ctx, t, src, stats, trial, sc)
		if errors.Is(err, errLogReplaced) {
			lastErr = err
			sc.prog = p
			continue
		}
		if err != nil {
			return 0, false, err
		}
		*p = *trial
		sc.prog = p
		return now, missing, nil
	}
	return 0, false, lastErr
}

func (l *Log) readLogSpans(ctx context.Context, t Target, src logSource, stats []logStat, p *logProgress, sc *logScanner) (bool, error) {
	sc.prog = p
	var spans []logSpan
	seen := map[string]bool{}
	for _, f := range p.files {
		if f.id == "" || seen[f.id] {
			continue
		}
		for i, st := range stats {
			if st.id != f.id {
				continue
			}
			seen[f.id] = true
			s := logSpan{suffix: logSuffixes[i], id: st.id, from: f.off, to: st.size, before: f.before, midLine: f.midLine}
			if st.size < f.off { // truncated
				s.from, s.before, s.midLine = 0, "", false
			}
			spans = append(spans, s)
			break
		}
		// Not found: rotated beyond <file>.1 / .0 (or removed); what it got since the last
		// check is lost.
	}
	if cur := stats[0]; cur.id != "" && !seen[cur.id] {
		// A file at the path that is not followed yet: new since the mark (rotation, or created
		// after it). Read it from its start, after the rest of the older ones.
		spans = append(spans, logSpan{suffix: "", id: cur.id, from: 0, to: cur.size})
	}
	if len(spans) == 0 {
		p.files = nil
		return true, nil
	}

	// The budget goes to the newest bytes first: the file at the path, then the older ones.
	budget := int64(l.maxBytes())
	for _, s := range spans {
		budget -= int64(len(s.before))
	}
	budget = max(budget, 0)
	for i := len(spans) - 1; i >= 0; i-- {
		s := &spans[i]
		n := min(s.to-s.from, budget)
		budget -= n
		s.readFrom = s.to - n
	}
	var files []logFilePos
	for _, s := range spans {
		f, err := l.readLogSpan(ctx, t, src, s, p, sc, &budget)
		if err != nil {
			return false, err
		}
		files = append(files, f)
	}
	p.files = files
	return false, nil
}

// readLogSpan reads one span, scans its complete lines and returns the file's new position.
// spare is what is left of the check's budget; a file found truncated may use it.
func (l *Log) readLogSpan(ctx context.Context, t Target, src logSource, s logSpan, p *logProgress, sc *logScanner, spare *int64) (logFilePos, error) {
	if s.readFrom > s.from {
		p.cuts++
		p.skipped += s.readFrom - s.from
	}
	if s.readFrom >= s.to {
		if s.to > s.from {
			// None of it fits the budget: skip it all; the next read starts inside a line.
			return logFilePos{id: s.id, off: s.to, midLine: true}, nil
		}
		return logFilePos{id: s.id, off: s.from, before: s.before, midLine: s.midLine}, nil
	}
	name := src.pathExpr + s.suffix
	prefix := ""
	if s.readFrom == s.from && s.from > 0 {
		prefix = s.before
	}
	start := s.readFrom - int64(len(prefix))
	data, err := logReadRange(ctx, t, name, s.id, start, s.to-start, l.maxBytes())
	if err != nil {
		return logFilePos{}, err
	}
	if prefix != "" && !bytes.HasPrefix(data, []byte(prefix)) {
		// The bytes before the offset changed: the file was truncated and written again past
		// the offset (copytruncate). Read it from the start, within its allowance and what is
		// left of the budget.
		alloc := s.to - s.readFrom + *spare
		s.from, s.before, s.midLine = 0, "", false
		s.readFrom = max(0, s.to-alloc)
		*spare = alloc - (s.to - s.readFrom)
		if s.readFrom > 0 {
			p.cuts++
			p.skipped += s.readFrom
		}
		prefix = ""
		if data, err = logReadRange(ctx, t, name, s.id, s.readFrom, s.to-s.readFrom, l.maxBytes()); err != nil {
			return logFilePos{}, err
		}
	} else {
		data = data[min(len(prefix), len(data)):]
	}

	// Scan whole lines only. A last line without its newline yet is read again next time,
	// unless it is so long that it would never fit: then it is taken as it is.
	end := 0
	if i := bytes.LastIndexByte(data, '\n'); i >= 0 {
		end = i + 1
	} else if len(data) >= l.maxBytes()/2 {
		end = len(data)
	}
	// After bytes were skipped, the first line read is only the end of a line: drop it.
	skipFirst := s.midLine || s.readFrom > s.from
	drop := 0
	if skipFirst {
		if i := bytes.IndexByte(data[:end], '\n'); i >= 0 {
			drop = i + 1
		} else {
			drop = end
		}
	}
	sc.scan(data[drop:end])
	pos := logFilePos{id: s.id, off: s.readFrom + int64(end), midLine: skipFirst}
	if end > 0 {
		pos.midLine = data[end-1] != '\n'
	}
	// The fingerprint of the new offset: the bytes just before it.
	seen := prefix + string(data[:end])
	pos.before = seen[max(0, len(seen)-logFingerprint):]
	return pos, nil
}

// logReadRange reads n bytes of the file from offset from, in pieces the target can return whole.
func logReadRange(ctx context.Context, t Target, pathExpr, id string, from, n int64, maxBytes int) ([]byte, error) {
	chunk := int64(logGenericChunk)
	if logViaSSH(t) {
		chunk = int64(maxBytes) + logFingerprint
	}
	var out []byte
	for n > 0 {
		k := min(n, chunk)
		res, err := runLogScript(ctx, t, logReadScript(pathExpr, id, from, k), int(k)+1024)
		if err != nil {
			return nil, err
		}
		switch res.ExitStatus {
		case 0:
		case 3:
			return nil, errLogReplaced
		default:
			return nil, fmt.Errorf("reading exited %d: %s", res.ExitStatus, Bound(strings.TrimSpace(res.Stderr), 400))
		}
		if int64(len(res.Stdout)) > k {
			return nil, fmt.Errorf("reading %d bytes returned %d: the output was cut on the way", k, len(res.Stdout))
		}
		out = append(out, res.Stdout...)
		if int64(len(res.Stdout)) < k { // the file is shorter than it was: stop here
			break
		}
		from += k
		n -= k
	}
	return out, nil
}

// ---- journald ----

// journalCommand is the script that reads unit's journal: the host's clock on the first line,
// then the last limit+1 bytes of the messages since the epoch second since (or after cursor, once
// one is known) with the cursor of the last entry, and journalctl's exit status on the last line.
// Getting limit+1 bytes means more than limit were there: the read was cut.
func journalCommand(unit string, since int64, cursor string, limit int) string {
	sel := "--since=@" + strconv.FormatInt(since, 10)
	if cursor != "" {
		sel = "--after-cursor=" + sshx.Quote(cursor)
	}
	return "date +%s; { journalctl --unit=" + sshx.Quote(unit) + " " + sel +
		` -o cat --no-pager -q --show-cursor; echo "-- exit $?"; } | tail -c ` + strconv.Itoa(limit+1)
}

// journalOutput is journalCommand's output, parsed.
type journalOutput struct {
	now    int64
	body   []byte // whole messages, newline-terminated
	cursor string // "" when journalctl printed none (no entries)
	exit   int
	cut    bool
}

func parseJournal(out string, limit int) (journalOutput, error) {
	var j journalOutput
	first, rest, ok := strings.Cut(out, "\n")
	if !ok {
		return j, fmt.Errorf("unexpected output %q", Bound(out, 200))
	}
	var err error
	if j.now, err = parseHostEpoch(first); err != nil {
		return j, err
	}
	j.cut = len(rest) > limit
	body := strings.TrimSuffix(rest, "\n")
	i := strings.LastIndexByte(body, '\n')
	last := body[i+1:]
	code, ok := strings.CutPrefix(last, "-- exit ")
	if !ok {
		return j, fmt.Errorf("journalctl output does not end with its exit status: %q", Bound(last, 200))
	}
	if j.exit, err = strconv.Atoi(code); err != nil {
		return j, fmt.Errorf("journalctl exit status %q", code)
	}
	body = body[:max(i, 0)]
	// journalctl prints the cursor after the last entry; a message cannot come after it.
	i = strings.LastIndexByte(body, '\n')
	if c, ok := strings.CutPrefix(body[i+1:], "-- cursor: "); ok {
		j.cursor = c
		body = body[:max(i, 0)]
	}
	if j.cut {
		// The first line was cut in the middle.
		if k := strings.IndexByte(body, '\n'); k >= 0 {
			body = body[k+1:]
		} else {
			body = ""
		}
	}
	if body != "" {
		j.body = []byte(body + "\n")
	}
	return j, nil
}

func (l *Log) readJournal(ctx context.Context, t Target, src logSource, m *logMark, p *logProgress, sc *logScanner) (int64, error) {
	limit := l.maxBytes()
	if !logViaSSH(t) {
		limit = min(limit, logGenericChunk)
	}
	res, err := runLogScript(ctx, t, journalCommand(src.unit, m.at, p.cursor, limit), limit+1024)
	if err != nil {
		return 0, err
	}
	j, err := parseJournal(res.Stdout, limit)
	if err != nil {
		return 0, err
	}
	if j.exit != 0 {
		return 0, fmt.Errorf("journalctl exited %d: %s", j.exit, Bound(strings.TrimSpace(res.Stderr), 400))
	}
	if j.cut {
		p.cuts++
	}
	sc.scan(j.body)
	if j.cursor != "" {
		p.cursor = j.cursor
	}
	return j.now, nil
}

// ---- running commands ----

func logViaSSH(t Target) bool {
	switch st := t.(type) {
	case SSHTarget:
		return st.Client != nil
	case *SSHTarget:
		return st != nil && st.Client != nil
	}
	return false
}

// runLogScript runs a POSIX sh script on the host (under sh whatever the login shell is). On an
// SSHTarget the output may be up to maxOut bytes; other targets get Exec's own limit, which the
// callers respect by reading in pieces of logGenericChunk.
func runLogScript(ctx context.Context, t Target, script string, maxOut int) (ExecResult, error) {
	cmd := "sh -c " + sshx.Quote(script)
	var c *sshx.Client
	switch st := t.(type) {
	case SSHTarget:
		c = st.Client
	case *SSHTarget:
		if st != nil {
			c = st.Client
		}
	}
	if c == nil {
		return t.Exec(ctx, cmd, 0)
	}
	res, err := c.Run(ctx, cmd, sshx.RunOptions{MaxOutput: max(maxOut, sshx.DefaultMaxOutput)})
	if err != nil {
		return ExecResult{}, err
	}
	if res.Truncated {
		return ExecResult{}, fmt.Errorf("the output of a read was cut on the way (over %d bytes)", maxOut)
	}
	return ExecResult{Stdout: res.Stdout, Stderr: res.Stderr, ExitStatus: res.ExitStatus}, nil
}
