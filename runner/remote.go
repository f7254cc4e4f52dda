package runner

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	sshx "github.com/canaryops/terraform-provider-canary/runner/ssh"
)

// Everything the runner keeps on a host lives under ~/.canary: the host lock and one marker per
// release. Markers make resume and revert work from the hosts alone.
const stateDir = `"$HOME"/.canary`

// Marker is the record a release leaves on each host it changes.
type Marker struct {
	Release         string    `json:"release"`
	Fleet           string    `json:"fleet"`
	Version         string    `json:"version"`
	PreviousVersion string    `json:"previous_version"`
	RunID           string    `json:"run_id"`
	Stage           string    `json:"stage"`
	Status          string    `json:"status"` // deployed, reverted
	Time            time.Time `json:"time"`
	// Files are what the deploy uploaded, so a later revert (a destroy) can put back what they
	// replaced.
	Files []MarkerFile `json:"files,omitempty"`
}

// MarkerFile is an uploaded file and the backup of what it replaced.
type MarkerFile struct {
	Path    string `json:"path"`
	Existed bool   `json:"existed"`
	Backup  string `json:"backup,omitempty"`
}

var unsafeName = regexp.MustCompile(`[^A-Za-z0-9._-]`)

func markerPath(release string) string {
	return stateDir + "/releases/" + unsafeName.ReplaceAllString(release, "_") + ".json"
}

func writeMarker(ctx context.Context, c *sshx.Client, m Marker, timeout time.Duration) error {
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	p := markerPath(m.Release)
	cmd := "umask 077 && mkdir -p " + stateDir + "/releases && cat > " + p + ".tmp && mv -f " + p + ".tmp " + p
	res, err := c.Run(ctx, cmd, sshx.RunOptions{Timeout: timeout, Stdin: strings.NewReader(string(b) + "\n")})
	if err != nil {
		return err
	}
	if res.ExitStatus != 0 {
		return fmt.Errorf("writing marker %s: exit %d: %s", p, res.ExitStatus, strings.TrimSpace(res.Stderr))
	}
	return nil
}

// LockHolder describes who holds a host lock.
type LockHolder struct {
	RunID   string
	Release string
	Since   string
	Raw     string
}

// LockedError says a host is locked by another rollout.
type LockedError struct {
	Host   string
	Holder LockHolder
	Stale  time.Duration
}

func (e *LockedError) Error() string {
	return fmt.Sprintf("host %q is locked by run_id %s (release %s, since %s): another rollout is in progress on this fleet; wait for it to finish. A lock not refreshed for %s is taken over as stale",
		e.Host, e.Holder.RunID, e.Holder.Release, e.Holder.Since, e.Stale)
}

func parseHolder(s string) LockHolder {
	h := LockHolder{Raw: strings.TrimSpace(s)}
	for _, f := range strings.Fields(s) {
		k, v, _ := strings.Cut(f, "=")
		switch k {
		case "run_id":
			h.RunID = v
		case "release":
			h.Release = v
		case "since":
			h.Since = v
		}
	}
	return h
}

// versionSnippet runs the version command and prints the version it reports: the first line of
// its output with blanks trimmed and runs of blanks folded, or nothing when the command fails
// (nothing is installed). It uses shell builtins only, to stay cheap on the host.
func versionSnippet(versionCmd string) string {
	return versionVar(versionCmd) + "; printf '%s\\n' \"$__v\""
}

// versionVar is versionSnippet that sets $__v instead of printing.
func versionVar(versionCmd string) string {
	return "__v=$( { " + versionCmd + "\n} 2>/dev/null ) || __v=\n" +
		"__v=${__v%%\"\n\"*}; set -f; set -- $__v; __v=\"$*\""
}

// prepared is what one prepare session learns about a host.
type prepared struct {
	stale   *LockHolder // a stale lock that was taken over
	marker  *Marker
	version string // first line of version_command's output; "" when it failed or is unset
}

// prepare takes the host lock, reads the release's marker and runs the version command, in one
// session. The lock is a file created with O_EXCL (noclobber) that holds the owner line; the
// holder refreshes its mtime, and one not refreshed for staleAfter is taken over.
//
// With take false (a dry run) the lock is only looked at: a free or stale lock reports FREE and
// nothing is created on the host.
func prepare(ctx context.Context, sh *sshx.Shell, host, owner, release, versionCmd string, staleAfter, timeout time.Duration, take bool) (*prepared, error) {
	mp := markerPath(release)
	script := `d=` + stateDir + `; l="$d/lock"; me=` + sshx.Quote(owner) + `
umask 077
if ` + map[bool]string{true: "false", false: "true"}[take] + `; then
  cur=$(cat "$l" 2>/dev/null); now=$(date +%s); m=$(stat -c %Y "$l" 2>/dev/null || echo 0)
  if [ -n "$cur" ] && [ $((now - m)) -le ` + strconv.Itoa(int(staleAfter.Seconds())) + ` ]; then echo "@@lock HELD $cur"; exit 75; fi
  echo "@@lock FREE"
else
[ -d "$d" ] || mkdir -p "$d" || exit 1
if (set -C; printf '%s\n' "$me" > "$l") 2>/dev/null; then echo "@@lock ACQUIRED"
else
  cur=$(cat "$l" 2>/dev/null)
  now=$(date +%s); m=$(stat -c %Y "$l" 2>/dev/null || echo "$now")
  if [ "$cur" = "$me" ]; then touch "$l"; echo "@@lock ACQUIRED"
  elif [ $((now - m)) -gt ` + strconv.Itoa(int(staleAfter.Seconds())) + ` ] && printf '%s\n' "$me" > "$l.$$" && mv -f "$l.$$" "$l" && [ "$(cat "$l")" = "$me" ]; then echo "@@lock STALE $cur"
  else echo "@@lock HELD $cur"; exit 75
  fi
fi
fi
echo "@@marker"; if [ -f ` + mp + ` ]; then while IFS= read -r l || [ -n "$l" ]; do printf '%s\n' "$l"; done < ` + mp + `; fi
echo "@@version"`
	if versionCmd != "" {
		script += "\n" + versionSnippet(versionCmd)
	}
	out, status, err := sh.Run(ctx, script, timeout)
	if err != nil {
		return nil, err
	}
	sec := sections(out)
	lock := sec["lock"]
	switch {
	case status == 75 && strings.HasPrefix(lock, "HELD"):
		return nil, &LockedError{Host: host, Holder: parseHolder(strings.TrimPrefix(lock, "HELD")), Stale: staleAfter}
	case status != 0 || !strings.HasPrefix(lock, "ACQUIRED") && !strings.HasPrefix(lock, "STALE") && !strings.HasPrefix(lock, "FREE"):
		return nil, fmt.Errorf("preparing the host (lock, marker, version): exit %d: %s", status, strings.TrimSpace(out))
	}
	p := &prepared{version: strings.TrimSpace(sec["version"])}
	if strings.HasPrefix(lock, "STALE") {
		h := parseHolder(strings.TrimPrefix(lock, "STALE"))
		p.stale = &h
	}
	if m := strings.TrimSpace(sec["marker"]); m != "" {
		p.marker = &Marker{}
		if err := json.Unmarshal([]byte(m), p.marker); err != nil {
			return nil, fmt.Errorf("marker %s is not valid JSON (%v); move it aside to continue", mp, err)
		}
	}
	return p, nil
}

// sections splits output made of "@@name rest" header lines into name -> rest plus the lines
// that follow, up to the next header.
func sections(out string) map[string]string {
	m := map[string]string{}
	cur := ""
	for _, line := range strings.SplitAfter(out, "\n") {
		if name, ok := strings.CutPrefix(line, "@@"); ok {
			name = strings.TrimRight(name, "\n")
			k, rest, _ := strings.Cut(name, " ")
			cur = k
			m[cur] = rest
			continue
		}
		if cur != "" {
			m[cur] += line
		}
	}
	return m
}

// verified is what verify found.
type verified struct {
	version string // what version_command printed (the expected version when it is unset)
	ok      bool   // version matched (or no version_command) and the marker was written
	output  string // the script's output, for evidence when the marker could not be written
}

// verify runs the version command after a deploy or revert and, when the host reports the
// expected version, writes the marker (atomically: a temporary file renamed over it). It runs on
// the control shell: the deploy command itself ran through Shell.Exec.
func verify(ctx context.Context, sh *sshx.Shell, versionCmd, expect string, m Marker, timeout time.Duration) (*verified, error) {
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, err
	}
	mp := markerPath(m.Release)
	script := ""
	if versionCmd != "" {
		script = versionVar(versionCmd) + "\n" +
			"printf '@@version %s\\n' \"$__v\"\n" +
			"[ \"$__v\" = " + sshx.Quote(expect) + " ] || { echo @@mismatch; exit 0; }\n"
	}
	script += "umask 077 && { [ -d " + stateDir + "/releases ] || mkdir -p " + stateDir + "/releases; } && printf '%s\\n' " + sshx.Quote(string(b)) + " > " + mp + ".tmp && mv -f " + mp + ".tmp " + mp + " && echo @@verified"
	out, status, err := sh.Run(ctx, script, timeout)
	if err != nil {
		return nil, err
	}
	sec := sections(out)
	v := &verified{version: strings.TrimSpace(sec["version"]), output: strings.TrimSpace(out)}
	_, v.ok = sec["verified"]
	v.ok = v.ok && status == 0
	if versionCmd == "" {
		v.version = expect
	}
	return v, nil
}

// refreshLock touches the host lock if this run still holds it. It uses a session of its own, as
// the control shell may be busy with a long deploy command.
func refreshLock(ctx context.Context, c *sshx.Client, owner string, timeout time.Duration) error {
	cmd := `l=` + stateDir + `/lock; cur=; { IFS= read -r cur < "$l"; } 2>/dev/null; [ "$cur" = ` + sshx.Quote(owner) + ` ] && touch "$l"`
	_, err := c.Run(ctx, cmd, sshx.RunOptions{Timeout: timeout})
	return err
}

func releaseLock(ctx context.Context, sh *sshx.Shell, owner string, timeout time.Duration) error {
	cmd := `l=` + stateDir + `/lock; cur=; { IFS= read -r cur < "$l"; } 2>/dev/null; if [ "$cur" = ` + sshx.Quote(owner) + ` ]; then rm -f "$l"; fi`
	out, status, err := sh.Run(ctx, cmd, timeout)
	if err == nil && status != 0 {
		err = fmt.Errorf("exit %d: %s", status, strings.TrimSpace(out))
	}
	return err
}
