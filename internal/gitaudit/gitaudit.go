// Package gitaudit leaves the audit trail of an automatic rollback in the Terraform
// configuration's git repository: after the fleet went back to the previous version, it
// finds the commit that introduced the failed version and prepares its revert on a new
// branch for review, or, when the culprit is ambiguous, creates nothing and explains what
// a human has to triage.
//
// It shells out to the real git binary and never touches the operator's working tree,
// index or current branch: the revert is made in a temporary worktree that is always
// removed again.
package gitaudit

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Request describes the rollback to record.
type Request struct {
	Dir           string // Terraform's working directory (inside a git work tree)
	Resource      string // the release's address, e.g. "canary_release.agent"
	FailedVersion string // the version that failed, e.g. "1.2.0"
	Previous      string // the version the fleet went back to (for the message)

	RunID, Stage, Host, Guard string
	Evidence                  string // failure evidence; at most MaxEvidence bytes reach the message

	BranchPrefix string // default "canary/revert-"
	Push         bool   // push the branch; default false
	Remote       string // default "origin"

	// AuthorName and AuthorEmail default to git's identity (GIT_AUTHOR_NAME/EMAIL, then
	// user.name/user.email), and without one to "canary-provider" <canary@localhost>.
	AuthorName, AuthorEmail string
}

// Candidate is a commit that introduced the failed version.
type Candidate struct {
	Commit, Subject string
	Files           []string // every file the commit changed, relative to the repository top
	// OtherReleases are the other canary_release blocks, and version values (var.X,
	// module.M.x_version, ...) not feeding this release, that the commit also changes.
	OtherReleases []string
	// Sets says where the commit set the failed version, e.g.
	// "var.agent_version in terraform.tfvars" or "canary_release.agent in main.tf".
	Sets []string
}

// Result is what Revert did.
type Result struct {
	Branch, Commit, Reverted string // the new branch, its revert commit, the commit it reverts
	Pushed                   bool

	ManualTriage bool        // nothing was created: see Reason and Candidates
	Reason       string      // "manual triage needed: ..." with the candidates listed
	Candidates   []Candidate // every commit found, also when one was reverted
}

// MaxEvidence bounds the evidence copied into the commit message.
const MaxEvidence = 4096

const (
	defaultPrefix = "canary/revert-"
	defaultRemote = "origin"
	defaultName   = "canary-provider"
	defaultEmail  = "canary@localhost"
	footer        = "Created by terraform-provider-canary after an automatic rollback; review before merging."
)

var resourceRE = regexp.MustCompile(`^canary_release\.([A-Za-z_][A-Za-z0-9_-]*)$`)

// Revert finds the commit that introduced req.FailedVersion for req.Resource in the
// configuration in req.Dir and creates a branch holding its revert, with an audit message.
//
// The search covers the history (reachable from HEAD, merges excluded) of the files
// Terraform reads in Dir itself: *.tf, *.tf.json, *.tfvars, *.tfvars.json. A commit is a
// candidate when it raised the number of occurrences of the version string in those
// files and assigned it, as a whole string, at a place feeding the release's version:
// its version attribute, or the variable (default or tfvars value) or local it refers
// to. Exactly one candidate that changes no other release is reverted; otherwise nothing
// is created and the Result asks for manual triage.
//
// The returned error is for failures (bad request, not a git repository, branch exists,
// git failing); ambiguity is not an error. When only the push fails, Revert returns the
// Result of the local branch together with an error saying so.
func Revert(ctx context.Context, req Request) (*Result, error) {
	if err := checkRequest(&req); err != nil {
		return nil, err
	}
	name := resourceRE.FindStringSubmatch(req.Resource)[1]

	dir, err := filepath.Abs(req.Dir)
	if err != nil {
		return nil, fmt.Errorf("gitaudit: directory %q: %w", req.Dir, err)
	}
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		return nil, fmt.Errorf("gitaudit: %q is not a directory", req.Dir)
	}
	inDir := git{dir: dir}
	if out, err := inDir.trimmed(ctx, "rev-parse", "--is-inside-work-tree"); err != nil || out != "true" {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("gitaudit: %s is not inside a git work tree, so the rollback of %s to %s cannot be recorded as a git revert; keep the configuration in git to get the audit trail", dir, req.Resource, orPrevious(req.Previous))
	}
	top, err := inDir.trimmed(ctx, "rev-parse", "--show-toplevel")
	if err != nil {
		return nil, fmt.Errorf("gitaudit: finding the repository of %s: %w", dir, err)
	}
	prefix, err := inDir.trimmed(ctx, "rev-parse", "--show-prefix")
	if err != nil {
		return nil, fmt.Errorf("gitaudit: finding %s in its repository: %w", dir, err)
	}
	repo := git{dir: top}
	head, err := repo.trimmed(ctx, "rev-parse", "--verify", "--quiet", "HEAD^{commit}")
	if err != nil || head == "" {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("gitaudit: the repository at %s has no commit yet; nothing to revert", top)
	}

	branch := branchName(req, name)
	if _, err := repo.run(ctx, "check-ref-format", "--branch", branch); err != nil {
		return nil, fmt.Errorf("gitaudit: %q is not a valid branch name (check branch_prefix): %w", branch, err)
	}
	if exists, err := branchExists(ctx, repo, branch); err != nil {
		return nil, err
	} else if exists {
		return nil, fmt.Errorf("gitaudit: branch %s already exists in %s; it may hold the revert of an earlier run. Nothing was changed; review or delete that branch, or use another run id or branch prefix", branch, top)
	}

	s := &searcher{g: repo, prefix: prefix, version: req.FailedVersion, resource: name, blobs: map[string]string{}}
	found, err := s.find(ctx, head)
	if err != nil {
		return nil, fmt.Errorf("gitaudit: searching the history of %s for version %s: %w", dir, req.FailedVersion, err)
	}
	res := &Result{}
	for _, c := range found {
		res.Candidates = append(res.Candidates, c.Candidate)
	}
	if why := triageReason(req, prefix, found); why != "" {
		res.ManualTriage, res.Reason = true, why
		return res, nil
	}
	cand := found[0]

	ident, err := identity(ctx, repo, req)
	if err != nil {
		return nil, err
	}
	commit, triage, err := revertInWorktree(ctx, repo, head, cand.Candidate, branch, message(req, cand.Candidate), ident)
	if err != nil {
		return nil, err
	}
	if triage != "" {
		res.ManualTriage, res.Reason = true, triage
		return res, nil
	}
	res.Branch, res.Commit, res.Reverted = branch, commit, cand.Commit

	if req.Push {
		if _, err := repo.run(ctx, "push", "--", req.Remote, "refs/heads/"+branch+":refs/heads/"+branch); err != nil {
			return res, fmt.Errorf("gitaudit: branch %s was created locally (commit %s reverting %s) but pushing it to %q failed; push it by hand for review: %w", branch, short(commit), short(cand.Commit), req.Remote, err)
		}
		res.Pushed = true
	}
	return res, nil
}

func checkRequest(req *Request) error {
	if req.Dir == "" {
		return errors.New("gitaudit: Dir is required (Terraform's working directory)")
	}
	if !resourceRE.MatchString(req.Resource) {
		return fmt.Errorf("gitaudit: Resource %q is not a canary_release address such as canary_release.agent", req.Resource)
	}
	if strings.TrimSpace(req.FailedVersion) == "" {
		return errors.New("gitaudit: FailedVersion is required")
	}
	if strings.ContainsFunc(req.FailedVersion, func(r rune) bool { return unicode.IsControl(r) }) {
		return fmt.Errorf("gitaudit: FailedVersion %q contains control characters", req.FailedVersion)
	}
	if req.BranchPrefix == "" {
		req.BranchPrefix = defaultPrefix
	}
	if req.Remote == "" {
		req.Remote = defaultRemote
	}
	if strings.HasPrefix(req.Remote, "-") {
		return fmt.Errorf("gitaudit: Remote %q is not a remote name or URL", req.Remote)
	}
	return nil
}

// branchName is <prefix><release>-<version>-<short run id>, with the version and run id
// reduced to characters that are safe in a ref.
func branchName(req Request, name string) string {
	b := req.BranchPrefix + name + "-" + refSafe(req.FailedVersion)
	if run := refSafe(req.RunID); run != "" {
		if len(run) > 8 {
			run = strings.Trim(run[:8], ".-")
		}
		b += "-" + run
	}
	return b
}

func refSafe(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch {
		case r < 0x80 && (unicode.IsLetter(r) || unicode.IsDigit(r) || r == '.' || r == '_' || r == '-' || r == '+'):
			b.WriteRune(r)
		default:
			b.WriteByte('-')
		}
	}
	out := b.String()
	for strings.Contains(out, "..") {
		out = strings.ReplaceAll(out, "..", ".")
	}
	out = strings.Trim(out, ".-")
	return strings.TrimSuffix(out, ".lock")
}

func branchExists(ctx context.Context, repo git, branch string) (bool, error) {
	_, err := repo.run(ctx, "show-ref", "--verify", "--quiet", "refs/heads/"+branch)
	switch {
	case err == nil:
		return true, nil
	case exitCode(err) == 1:
		return false, nil
	default:
		return false, fmt.Errorf("gitaudit: checking for branch %s: %w", branch, err)
	}
}

// triageReason returns "" when exactly one clean candidate was found, else the manual
// triage message.
func triageReason(req Request, prefix string, found []candidate) string {
	where := "the repository root"
	if prefix != "" {
		where = strings.TrimSuffix(prefix, "/")
	}
	var b strings.Builder
	switch {
	case len(found) == 0:
		fmt.Fprintf(&b, "manual triage needed: no commit in the history of the Terraform files in %s (*.tf, *.tf.json, *.tfvars, *.tfvars.json) introduced version %q for %s; it may have been set with -var, TF_VAR_ or a -var-file outside that directory, or never committed. Nothing was reverted; restore %s in the configuration by hand after review.",
			where, req.FailedVersion, req.Resource, orPrevious(req.Previous))
		return b.String()
	case len(found) > 1:
		fmt.Fprintf(&b, "manual triage needed: %d commits introduced version %q for %s, so the one to revert is ambiguous; nothing was reverted.",
			len(found), req.FailedVersion, req.Resource)
	case found[0].unresolved != "":
		fmt.Fprintf(&b, "manual triage needed: %s, so it is not certain that the commit that added version %q is the one that set it; nothing was reverted.",
			found[0].unresolved, req.FailedVersion)
	case len(found[0].OtherReleases) > 0:
		fmt.Fprintf(&b, "manual triage needed: the commit that introduced version %q for %s also changes %s, and reverting it would roll those back too; nothing was reverted.",
			req.FailedVersion, req.Resource, strings.Join(found[0].OtherReleases, ", "))
	default:
		return ""
	}
	b.WriteString("\nCandidates:")
	for _, c := range found {
		writeCandidate(&b, c.Candidate)
	}
	fmt.Fprintf(&b, "\nReview the candidates and revert by hand (git revert <commit>, on a branch for review) only what restores %s to %s.", req.Resource, orPrevious(req.Previous))
	return b.String()
}

func writeCandidate(b *strings.Builder, c Candidate) {
	fmt.Fprintf(b, "\n  - %s %q", short(c.Commit), oneLine(c.Subject, 120))
	if len(c.Files) > 0 {
		fmt.Fprintf(b, "; files: %s", strings.Join(c.Files, ", "))
	}
	if len(c.Sets) > 0 {
		fmt.Fprintf(b, "; sets the version: %s", strings.Join(c.Sets, ", "))
	}
	if len(c.OtherReleases) > 0 {
		fmt.Fprintf(b, "; also changes: %s", strings.Join(c.OtherReleases, ", "))
	}
}

func short(commit string) string {
	if len(commit) > 12 {
		return commit[:12]
	}
	return commit
}

func orPrevious(p string) string {
	if p == "" {
		return "its previous version"
	}
	return p
}

// identity is the environment setting the author and committer of the revert.
func identity(ctx context.Context, repo git, req Request) ([]string, error) {
	name, email := req.AuthorName, req.AuthorEmail
	if name == "" {
		name = os.Getenv("GIT_AUTHOR_NAME")
	}
	if email == "" {
		email = os.Getenv("GIT_AUTHOR_EMAIL")
	}
	if name == "" {
		name = configValue(ctx, repo, "user.name")
	}
	if email == "" {
		email = configValue(ctx, repo, "user.email")
	}
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	if name == "" {
		name = defaultName
	}
	if email == "" {
		email = defaultEmail
	}
	name, email = oneLine(name, 200), oneLine(email, 200)
	return []string{
		"GIT_AUTHOR_NAME=" + name, "GIT_AUTHOR_EMAIL=" + email,
		"GIT_COMMITTER_NAME=" + name, "GIT_COMMITTER_EMAIL=" + email,
	}, nil
}

func configValue(ctx context.Context, repo git, key string) string {
	v, err := repo.trimmed(ctx, "config", "--get", key)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(v)
}

// revertInWorktree reverts cand on top of head in a temporary worktree, commits it with
// msg and creates branch at the result. It returns a triage reason instead of a commit
// when the revert does not apply. The worktree is always removed.
func revertInWorktree(ctx context.Context, repo git, head string, cand Candidate, branch, msg string, ident []string) (commit, triage string, err error) {
	tmp, err := os.MkdirTemp("", "canary-revert-")
	if err != nil {
		return "", "", fmt.Errorf("gitaudit: temporary directory: %w", err)
	}
	wtPath := filepath.Join(tmp, "worktree")
	added := false
	defer func() {
		// Clean up even when ctx was cancelled.
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		if added {
			if _, rerr := repo.run(cctx, "worktree", "remove", "--force", wtPath); rerr != nil && err == nil {
				err = fmt.Errorf("gitaudit: removing the temporary worktree %s: %w", wtPath, rerr)
			}
		}
		_ = os.RemoveAll(tmp)
		_, _ = repo.run(cctx, "worktree", "prune")
	}()

	if _, err := repo.run(ctx, "worktree", "add", "--detach", wtPath, head); err != nil {
		return "", "", fmt.Errorf("gitaudit: creating a temporary worktree: %w", err)
	}
	added = true
	wt := git{dir: wtPath, extra: ident}

	if _, rerr := wt.run(ctx, "revert", "--no-commit", cand.Commit); rerr != nil {
		if ctx.Err() != nil {
			return "", "", ctx.Err()
		}
		conflicts, _ := wt.trimmed(ctx, "diff", "--name-only", "--diff-filter=U")
		_, _ = wt.run(ctx, "revert", "--abort")
		if conflicts == "" {
			return "", "", fmt.Errorf("gitaudit: reverting %s: %w", short(cand.Commit), rerr)
		}
		var b strings.Builder
		fmt.Fprintf(&b, "manual triage needed: reverting %s on top of the current HEAD %s conflicts in %s (later commits changed the same lines); nothing was created.\nCandidates:",
			short(cand.Commit), short(head), strings.Join(strings.Fields(conflicts), ", "))
		writeCandidate(&b, cand)
		b.WriteString("\nRevert it by hand after review, resolving the conflict.")
		return "", b.String(), nil
	}
	if _, derr := wt.run(ctx, "diff", "--cached", "--quiet"); derr == nil {
		_, _ = wt.run(ctx, "revert", "--abort")
		var b strings.Builder
		fmt.Fprintf(&b, "manual triage needed: reverting %s changes nothing at the current HEAD %s (it was probably reverted already); nothing was created.\nCandidates:", short(cand.Commit), short(head))
		writeCandidate(&b, cand)
		return "", b.String(), nil
	} else if exitCode(derr) != 1 {
		return "", "", fmt.Errorf("gitaudit: inspecting the revert: %w", derr)
	}

	msgFile := filepath.Join(tmp, "message")
	if err := os.WriteFile(msgFile, []byte(msg), 0o600); err != nil {
		return "", "", fmt.Errorf("gitaudit: writing the commit message: %w", err)
	}
	// --no-verify: the operator's hooks may be interactive or slow; the branch is reviewed.
	// --cleanup=verbatim: evidence lines starting with '#' must stay.
	if _, err := wt.run(ctx, "commit", "--no-verify", "--cleanup=verbatim", "-F", msgFile); err != nil {
		return "", "", fmt.Errorf("gitaudit: committing the revert of %s: %w", short(cand.Commit), err)
	}
	commit, err = wt.trimmed(ctx, "rev-parse", "--verify", "HEAD")
	if err != nil {
		return "", "", fmt.Errorf("gitaudit: reading the revert commit: %w", err)
	}
	// No --force: if the branch appeared meanwhile, refuse rather than move it.
	if _, err := repo.run(ctx, "branch", "--no-track", "--", branch, commit); err != nil {
		return "", "", fmt.Errorf("gitaudit: creating branch %s: %w", branch, err)
	}
	return commit, "", nil
}

// message is the audit commit message.
func message(req Request, cand Candidate) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Revert %s to %s: %s failed its canary\n\n", req.Resource, oneLine(orPrevious(req.Previous), 100), oneLine(req.FailedVersion, 100))
	fmt.Fprintf(&b, "Version %s of %s failed its canary and the fleet was rolled back to %s.\nThis commit reverts the configuration change that introduced it.\n\n",
		oneLine(req.FailedVersion, 100), req.Resource, oneLine(orPrevious(req.Previous), 100))
	field := func(k, v string) {
		if v == "" {
			v = "-"
		}
		fmt.Fprintf(&b, "%s: %s\n", k, oneLine(v, 300))
	}
	field("run_id", req.RunID)
	field("stage", req.Stage)
	field("host", req.Host)
	field("guard", req.Guard)
	field("reverted", cand.Commit+" ("+oneLine(cand.Subject, 120)+")")
	if len(cand.Sets) > 0 {
		field("version set in", strings.Join(cand.Sets, ", "))
	}
	if ev := evidence(req.Evidence); ev != "" {
		b.WriteString("\nevidence:\n")
		for _, line := range strings.Split(ev, "\n") {
			b.WriteString(strings.TrimRight("    "+line, " \t"))
			b.WriteByte('\n')
		}
	}
	fmt.Fprintf(&b, "\nThis reverts commit %s.\n\n%s\n", cand.Commit, footer)
	return b.String()
}

// evidence bounds the evidence to MaxEvidence bytes (on a rune boundary) and drops
// control characters other than newline and tab.
func evidence(s string) string {
	s = strings.ToValidUTF8(strings.ReplaceAll(s, "\r\n", "\n"), "\uFFFD")
	s = strings.Map(func(r rune) rune {
		if r == '\n' || r == '\t' || !unicode.IsControl(r) {
			return r
		}
		return -1
	}, s)
	s = strings.TrimRight(s, "\n \t")
	if len(s) <= MaxEvidence {
		return s
	}
	cut := MaxEvidence
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + fmt.Sprintf("\n[... %d more bytes of evidence truncated]", len(s)-cut)
}

// oneLine flattens s to one bounded line.
func oneLine(s string, max int) string {
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, strings.ToValidUTF8(s, "\uFFFD"))
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > max {
		cut := max
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut] + "..."
	}
	return s
}
