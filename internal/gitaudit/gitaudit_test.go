package gitaudit

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestMain(m *testing.M) {
	// Every git process (the tests' and the package's) sees only the repositories' own
	// configuration, never the machine's.
	os.Setenv("GIT_CONFIG_GLOBAL", os.DevNull)
	os.Setenv("GIT_CONFIG_NOSYSTEM", "1")
	for _, k := range []string{"GIT_AUTHOR_NAME", "GIT_AUTHOR_EMAIL", "GIT_COMMITTER_NAME", "GIT_COMMITTER_EMAIL", "GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE"} {
		os.Unsetenv(k)
	}
	os.Exit(m.Run())
}

type testRepo struct {
	t   *testing.T
	dir string
}

func newRepo(t *testing.T) *testRepo {
	t.Helper()
	if _, err := exec.LookPath("git"); err != nil {
		t.Fatal("git is not on PATH")
	}
	r := &testRepo{t: t, dir: t.TempDir()}
	r.git("init", "-q", "-b", "main")
	r.git("config", "commit.gpgsign", "false")
	return r
}

// git runs git in the repository with a fixed identity and returns trimmed stdout.
func (r *testRepo) git(args ...string) string {
	r.t.Helper()
	out, err := r.gitErr(args...)
	if err != nil {
		r.t.Fatalf("git %s: %v", strings.Join(args, " "), err)
	}
	return out
}

func (r *testRepo) gitErr(args ...string) (string, error) {
	cmd := exec.Command("git", args...)
	cmd.Dir = r.dir
	cmd.Env = append(os.Environ(),
		"GIT_AUTHOR_NAME=Test Author", "GIT_AUTHOR_EMAIL=author@example.com",
		"GIT_COMMITTER_NAME=Test Author", "GIT_COMMITTER_EMAIL=author@example.com")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%v: %s", err, out)
	}
	return strings.TrimSpace(string(out)), nil
}

func (r *testRepo) write(path, content string) {
	r.t.Helper()
	p := filepath.Join(r.dir, path)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		r.t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		r.t.Fatal(err)
	}
}

// commit writes files, commits them with subject, and returns the commit id.
func (r *testRepo) commit(subject string, files map[string]string) string {
	r.t.Helper()
	for p, c := range files {
		r.write(p, c)
		r.git("add", "--", p)
	}
	r.git("commit", "-q", "-m", subject)
	return r.git("rev-parse", "HEAD")
}

func (r *testRepo) branches() []string {
	out := r.git("for-each-ref", "--format=%(refname:short)", "refs/heads/")
	return strings.Fields(out)
}

func (r *testRepo) worktrees() int {
	return strings.Count(r.git("worktree", "list", "--porcelain"), "worktree ")
}

const fleetTF = `resource "canary_fleet" "agents" {
  name  = "agents"
  hosts = [{ name = "agent-1", address = "10.0.0.11" }, { name = "agent-2", address = "10.0.0.12" }]
}

resource "canary_guard" "health" {
  name = "agent-health"
  http = { url = "http://127.0.0.1:8080/healthz", expect_status = [200] }
}
`

func releaseTF(name, version string) string {
	return fmt.Sprintf(`resource "canary_release" %q {
  fleet   = canary_fleet.agents.id
  version = %s
  deploy  = { command = "sudo /opt/agent/install {{.Version}}" }
  revert  = { command = "sudo /opt/agent/install {{.PreviousVersion}}" }
  guards  = [canary_guard.health.id]
  stages = [
    { name = "canary", hosts = "1", observe = "5m" },
    { name = "fleet", hosts = "100%%", observe = "1m" },
  ]
}
`, name, version)
}

func lit(v string) string { return `"` + v + `"` }

func baseRequest(dir string) Request {
	return Request{
		Dir:           dir,
		Resource:      "canary_release.agent",
		FailedVersion: "1.2.0",
		Previous:      "1.1.0",
		RunID:         "r-20240601-abcdef123456",
		Stage:         "canary",
		Host:          "agent-1",
		Guard:         "agent-health",
		Evidence:      "GET /healthz: 500\nbody: {\"version\":\"1.2.0\",\"ok\":false}\n# not a comment",
	}
}

func TestRevertLiteralVersion(t *testing.T) {
	r := newRepo(t)
	r.commit("add agent release", map[string]string{"main.tf": fleetTF + releaseTF("agent", lit("1.1.0")), "README.md": "infra\n"})
	r.commit("tune guard", map[string]string{"README.md": "infra for the agents\n"})
	culprit := r.commit("release 1.2.0", map[string]string{"main.tf": fleetTF + releaseTF("agent", lit("1.2.0"))})
	head := r.git("rev-parse", "HEAD")

	// Local, uncommitted work of the operator: an unstaged edit and a staged new file.
	r.write("README.md", "infra for the agents\nlocal edit, not committed\n")
	r.write("notes.tf", "# staged\n")
	r.git("add", "notes.tf")
	statusBefore := r.git("status", "--porcelain=v1")
	diffBefore := r.git("diff")
	cachedBefore := r.git("diff", "--cached")

	res, err := Revert(context.Background(), baseRequest(r.dir))
	if err != nil {
		t.Fatal(err)
	}
	if res.ManualTriage {
		t.Fatalf("unexpected manual triage: %s", res.Reason)
	}
	if res.Reverted != culprit {
		t.Fatalf("reverted %s, want %s", res.Reverted, culprit)
	}
	if want := "canary/revert-agent-1.2.0-r-202406"; res.Branch != want {
		t.Fatalf("branch %q, want %q", res.Branch, want)
	}
	if res.Pushed {
		t.Fatal("pushed without Push")
	}
	if got := r.git("rev-parse", res.Branch); got != res.Commit {
		t.Fatalf("branch at %s, result says %s", got, res.Commit)
	}
	if parent := r.git("rev-parse", res.Branch+"^"); parent != head {
		t.Fatalf("revert's parent %s, want HEAD %s", parent, head)
	}
	if changed := r.git("diff", "--name-only", head, res.Branch); changed != "main.tf" {
		t.Fatalf("revert changes %q, want only main.tf", changed)
	}
	if got, want := r.git("show", res.Branch+":main.tf"), strings.TrimSpace(fleetTF+releaseTF("agent", lit("1.1.0"))); got != want {
		t.Fatalf("main.tf on the branch:\n%s\nwant:\n%s", got, want)
	}
	// The operator's side is untouched.
	if got := r.git("rev-parse", "HEAD"); got != head {
		t.Fatalf("HEAD moved to %s", got)
	}
	if got := r.git("symbolic-ref", "--short", "HEAD"); got != "main" {
		t.Fatalf("current branch is %s", got)
	}
	if r.git("status", "--porcelain=v1") != statusBefore || r.git("diff") != diffBefore || r.git("diff", "--cached") != cachedBefore {
		t.Fatal("working tree or index changed")
	}
	if b, _ := os.ReadFile(filepath.Join(r.dir, "README.md")); !strings.Contains(string(b), "local edit, not committed") {
		t.Fatal("the uncommitted edit was lost")
	}
	if n := r.worktrees(); n != 1 {
		t.Fatalf("%d worktrees left:\n%s", n, r.git("worktree", "list"))
	}

	msg := r.git("log", "-1", "--format=%B", res.Branch)
	for _, want := range []string{
		"Revert canary_release.agent to 1.1.0: 1.2.0 failed its canary\n\n",
		"run_id: r-20240601-abcdef123456",
		"stage: canary",
		"host: agent-1",
		"guard: agent-health",
		"reverted: " + culprit + " (release 1.2.0)",
		"    GET /healthz: 500",
		`    body: {"version":"1.2.0","ok":false}`,
		"    # not a comment",
		"This reverts commit " + culprit + ".",
		footer,
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("message lacks %q:\n%s", want, msg)
		}
	}
	if !strings.HasPrefix(msg, "Revert canary_release.agent to 1.1.0: 1.2.0 failed its canary") {
		t.Errorf("subject: %q", strings.SplitN(msg, "\n", 2)[0])
	}
	if author := r.git("log", "-1", "--format=%an <%ae>|%cn <%ce>", res.Branch); author != "canary-provider <canary@localhost>|canary-provider <canary@localhost>" {
		t.Errorf("identity without git config: %s", author)
	}
	if len(res.Candidates) != 1 || res.Candidates[0].Commit != culprit || !slices.Equal(res.Candidates[0].Files, []string{"main.tf"}) {
		t.Errorf("candidates: %+v", res.Candidates)
	}
}

func TestRevertVersionFromTfvars(t *testing.T) {
	r := newRepo(t)
	r.git("config", "user.name", "Ops Bot")
	r.git("config", "user.email", "ops@example.com")
	r.commit("agent via variable", map[string]string{
		"main.tf":          fleetTF + releaseTF("agent", "var.agent_version"),
		"variables.tf":     "variable \"agent_version\" {\n  type = string\n}\n",
		"terraform.tfvars": "agent_version = \"1.1.0\"\n",
	})
	r.commit("unrelated: docs", map[string]string{"docs/ops.md": "runbook for 1.2.0\n"})
	culprit := r.commit("bump agent to 1.2.0", map[string]string{"terraform.tfvars": "# agent\nagent_version = \"1.2.0\"\n"})

	res, err := Revert(context.Background(), baseRequest(r.dir))
	if err != nil {
		t.Fatal(err)
	}
	if res.ManualTriage || res.Reverted != culprit {
		t.Fatalf("result %+v", res)
	}
	if got := r.git("show", res.Branch+":terraform.tfvars"); got != `agent_version = "1.1.0"` {
		t.Fatalf("terraform.tfvars on the branch: %q", got)
	}
	if got := res.Candidates[0].Sets; !slices.Equal(got, []string{"var.agent_version in terraform.tfvars"}) {
		t.Errorf("sets: %v", got)
	}
	if author := r.git("log", "-1", "--format=%an <%ae>", res.Branch); author != "Ops Bot <ops@example.com>" {
		t.Errorf("identity from git config: %s", author)
	}
	if !strings.Contains(r.git("log", "-1", "--format=%B", res.Branch), "version set in: var.agent_version in terraform.tfvars") {
		t.Error("message does not say where the version was set")
	}
}

func TestRevertThroughLocalAndVariableDefaultInSubdirectory(t *testing.T) {
	r := newRepo(t)
	// Two root modules; only infra/prod is Terraform's working directory.
	r.commit("prod and staging", map[string]string{
		"infra/prod/main.tf":          fleetTF + releaseTF("agent", "local.agent"),
		"infra/prod/locals.tf":        "locals {\n  agent = var.agent_version\n}\n",
		"infra/prod/variables.tf":     "variable \"agent_version\" {\n  default = \"1.1.0\"\n}\n",
		"infra/staging/main.tf":       fleetTF + releaseTF("agent", lit("1.1.0")),
		"infra/prod/modules/x/x.tf":   "variable \"agent_version\" {\n  default = \"1.1.0\"\n}\n",
		"infra/prod/release-notes.md": "",
	})
	culprit := r.commit("prod: agent 1.2.0", map[string]string{
		"infra/prod/variables.tf": "variable \"agent_version\" {\n  default = \"1.2.0\"\n}\n",
	})
	// Later commits that add 1.2.0 outside the module directory, or only in a comment,
	// or for another release, are not candidates.
	r.commit("staging: agent 1.2.0", map[string]string{"infra/staging/main.tf": fleetTF + releaseTF("agent", lit("1.2.0"))})
	r.commit("module default", map[string]string{"infra/prod/modules/x/x.tf": "variable \"agent_version\" {\n  default = \"1.2.0\"\n}\n"})
	r.commit("comment", map[string]string{"infra/prod/locals.tf": "locals {\n  # sidecar goes to 1.2.0 next week\n  agent = var.agent_version\n}\n"})
	r.commit("sidecar 1.2.0", map[string]string{"infra/prod/sidecar.tf": releaseTF("sidecar", lit("1.2.0"))})

	req := baseRequest(filepath.Join(r.dir, "infra", "prod"))
	req.RunID = ""
	req.AuthorName, req.AuthorEmail = "Rollback Robot", "robot@example.com"
	res, err := Revert(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if res.ManualTriage || res.Reverted != culprit {
		t.Fatalf("result %+v", res)
	}
	if res.Branch != "canary/revert-agent-1.2.0" {
		t.Errorf("branch %q", res.Branch)
	}
	if got := r.git("show", res.Branch+":infra/prod/variables.tf"); !strings.Contains(got, `default = "1.1.0"`) {
		t.Errorf("variables.tf on the branch: %s", got)
	}
	if author := r.git("log", "-1", "--format=%an <%ae>", res.Branch); author != "Rollback Robot <robot@example.com>" {
		t.Errorf("identity from the request: %s", author)
	}
	if got := res.Candidates[0].Sets; !slices.Equal(got, []string{"var.agent_version in variables.tf (default)"}) {
		t.Errorf("sets: %v", got)
	}
}

func TestAmbiguousOtherReleaseInSameCommit(t *testing.T) {
	r := newRepo(t)
	r.commit("agent and sidecar", map[string]string{"main.tf": fleetTF + releaseTF("agent", lit("1.1.0")) + releaseTF("sidecar", lit("0.9.0"))})
	culprit := r.commit("release 1.2.0 everywhere", map[string]string{"main.tf": fleetTF + releaseTF("agent", lit("1.2.0")) + releaseTF("sidecar", lit("1.2.0"))})
	head := r.git("rev-parse", "HEAD")

	res, err := Revert(context.Background(), baseRequest(r.dir))
	if err != nil {
		t.Fatal(err)
	}
	if !res.ManualTriage || res.Branch != "" || res.Commit != "" {
		t.Fatalf("want manual triage, got %+v", res)
	}
	for _, want := range []string{"manual triage needed:", culprit[:12], "release 1.2.0 everywhere", "canary_release.sidecar", "main.tf", "revert by hand"} {
		if !strings.Contains(res.Reason, want) {
			t.Errorf("reason lacks %q:\n%s", want, res.Reason)
		}
	}
	if len(res.Candidates) != 1 || !slices.Equal(res.Candidates[0].OtherReleases, []string{"canary_release.sidecar"}) {
		t.Errorf("candidates %+v", res.Candidates)
	}
	if b := r.branches(); !slices.Equal(b, []string{"main"}) {
		t.Errorf("branches %v", b)
	}
	if r.git("rev-parse", "HEAD") != head || r.worktrees() != 1 {
		t.Error("repository changed")
	}
}

func TestAmbiguousSharedVariableAndOtherVersionVariable(t *testing.T) {
	r := newRepo(t)
	r.commit("base", map[string]string{
		"main.tf":          fleetTF + releaseTF("agent", "var.agent_version") + releaseTF("sidecar", "var.sidecar_version"),
		"terraform.tfvars": "agent_version   = \"1.1.0\"\nsidecar_version = \"0.9.0\"\n",
	})
	r.commit("bump both", map[string]string{"terraform.tfvars": "agent_version   = \"1.2.0\"\nsidecar_version = \"0.9.1\"\n"})
	res, err := Revert(context.Background(), baseRequest(r.dir))
	if err != nil {
		t.Fatal(err)
	}
	if !res.ManualTriage || !slices.Equal(res.Candidates[0].OtherReleases, []string{"canary_release.sidecar", "var.sidecar_version"}) {
		t.Fatalf("result %+v", res)
	}

	// Both releases read the same variable: reverting it would roll the sidecar back too.
	r2 := newRepo(t)
	r2.commit("base", map[string]string{
		"main.tf":          fleetTF + releaseTF("agent", "var.fleet_version") + releaseTF("sidecar", "var.fleet_version"),
		"terraform.tfvars": "fleet_version = \"1.1.0\"\n",
	})
	r2.commit("fleet 1.2.0", map[string]string{"terraform.tfvars": "fleet_version = \"1.2.0\"\n"})
	res, err = Revert(context.Background(), baseRequest(r2.dir))
	if err != nil {
		t.Fatal(err)
	}
	if !res.ManualTriage || !slices.Equal(res.Candidates[0].OtherReleases, []string{"canary_release.sidecar"}) {
		t.Fatalf("shared variable: result %+v", res)
	}
}

func TestAmbiguousTwoCommits(t *testing.T) {
	r := newRepo(t)
	r.commit("base", map[string]string{
		"main.tf":      fleetTF + releaseTF("agent", "var.agent_version"),
		"variables.tf": "variable \"agent_version\" {\n  default = \"1.1.0\"\n}\n",
	})
	first := r.commit("default to 1.2.0", map[string]string{"variables.tf": "variable \"agent_version\" {\n  default = \"1.2.0\"\n}\n"})
	second := r.commit("pin 1.2.0 in tfvars", map[string]string{"prod.auto.tfvars": "agent_version = \"1.2.0\"\n"})

	res, err := Revert(context.Background(), baseRequest(r.dir))
	if err != nil {
		t.Fatal(err)
	}
	if !res.ManualTriage || len(res.Candidates) != 2 {
		t.Fatalf("result %+v", res)
	}
	if res.Candidates[0].Commit != second || res.Candidates[1].Commit != first {
		t.Errorf("candidates %+v", res.Candidates)
	}
	for _, want := range []string{"2 commits introduced version \"1.2.0\"", first[:12], second[:12], "default to 1.2.0", "pin 1.2.0 in tfvars", "prod.auto.tfvars", "variables.tf"} {
		if !strings.Contains(res.Reason, want) {
			t.Errorf("reason lacks %q:\n%s", want, res.Reason)
		}
	}
	if b := r.branches(); !slices.Equal(b, []string{"main"}) {
		t.Errorf("branches %v", b)
	}
}

func TestNoCandidate(t *testing.T) {
	r := newRepo(t)
	r.commit("base", map[string]string{"main.tf": fleetTF + releaseTF("agent", "var.agent_version") + "\nvariable \"agent_version\" {\n  type = string\n}\n"})
	r.commit("mention", map[string]string{"main.tf": "# 1.2.0 is coming\n" + fleetTF + releaseTF("agent", "var.agent_version") + "\nvariable \"agent_version\" {\n  type = string\n}\n"})

	res, err := Revert(context.Background(), baseRequest(r.dir))
	if err != nil {
		t.Fatal(err)
	}
	if !res.ManualTriage || len(res.Candidates) != 0 {
		t.Fatalf("result %+v", res)
	}
	if !strings.Contains(res.Reason, "no commit") || !strings.Contains(res.Reason, "-var") {
		t.Errorf("reason: %s", res.Reason)
	}
	if b := r.branches(); !slices.Equal(b, []string{"main"}) {
		t.Errorf("branches %v", b)
	}
}

func TestUnresolvedVersionExpressionNeedsTriage(t *testing.T) {
	r := newRepo(t)
	r.commit("base", map[string]string{
		"main.tf":          fleetTF + releaseTF("agent", `var.versions["agent"]`),
		"terraform.tfvars": "agent_version = \"1.1.0\"\n",
	})
	r.commit("bump", map[string]string{"terraform.tfvars": "agent_version = \"1.2.0\"\n"})
	res, err := Revert(context.Background(), baseRequest(r.dir))
	if err != nil {
		t.Fatal(err)
	}
	if !res.ManualTriage || len(res.Candidates) != 1 || !strings.Contains(res.Reason, "expression") {
		t.Fatalf("result %+v", res)
	}
}

func TestRevertConflictNeedsTriage(t *testing.T) {
	r := newRepo(t)
	r.commit("base", map[string]string{"main.tf": fleetTF + releaseTF("agent", lit("1.1.0"))})
	r.commit("release 1.2.0", map[string]string{"main.tf": fleetTF + releaseTF("agent", lit("1.2.0"))})
	later := strings.Replace(fleetTF+releaseTF("agent", lit("1.2.0")), "fleet   = canary_fleet.agents.id", "fleet   = canary_fleet.agents.name", 1)
	r.commit("edit the neighbouring line", map[string]string{"main.tf": later})
	head := r.git("rev-parse", "HEAD")

	res, err := Revert(context.Background(), baseRequest(r.dir))
	if err != nil {
		t.Fatal(err)
	}
	if !res.ManualTriage || !strings.Contains(res.Reason, "conflicts in main.tf") || res.Branch != "" {
		t.Fatalf("result %+v", res)
	}
	if b := r.branches(); !slices.Equal(b, []string{"main"}) {
		t.Errorf("branches %v", b)
	}
	if r.git("rev-parse", "HEAD") != head || r.worktrees() != 1 || r.git("status", "--porcelain") != "" {
		t.Error("repository changed")
	}
}

func TestAlreadyRevertedNeedsTriage(t *testing.T) {
	r := newRepo(t)
	r.commit("base", map[string]string{"main.tf": fleetTF + releaseTF("agent", lit("1.1.0"))})
	// Someone already went back by hand: reverting the culprit again changes nothing.
	r.commit("release 1.2.0", map[string]string{"main.tf": fleetTF + releaseTF("agent", lit("1.2.0"))})
	r.commit("back to 1.1.0", map[string]string{"main.tf": fleetTF + releaseTF("agent", lit("1.1.0"))})
	res, err := Revert(context.Background(), baseRequest(r.dir))
	if err != nil {
		t.Fatal(err)
	}
	if !res.ManualTriage {
		t.Fatalf("result %+v", res)
	}
	if b := r.branches(); !slices.Equal(b, []string{"main"}) {
		t.Errorf("branches %v", b)
	}
}

func TestPush(t *testing.T) {
	r := newRepo(t)
	bare := t.TempDir()
	if out, err := exec.Command("git", "init", "-q", "--bare", bare).CombinedOutput(); err != nil {
		t.Fatalf("git init --bare: %v: %s", err, out)
	}
	r.git("remote", "add", "origin", bare)
	r.commit("base", map[string]string{"main.tf": fleetTF + releaseTF("agent", lit("1.1.0"))})
	r.commit("release 1.2.0", map[string]string{"main.tf": fleetTF + releaseTF("agent", lit("1.2.0"))})

	req := baseRequest(r.dir)
	req.Push = true
	res, err := Revert(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if !res.Pushed {
		t.Fatal("not pushed")
	}
	out, err := exec.Command("git", "--git-dir", bare, "rev-parse", "refs/heads/"+res.Branch).CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != res.Commit {
		t.Fatalf("bare repo has %q (%v), want %s", out, err, res.Commit)
	}

	// A remote that does not exist: the branch stays local, the error says so.
	req.RunID = "second-run"
	req.Remote = "nowhere"
	res, err = Revert(context.Background(), req)
	if err == nil {
		t.Fatal("push to a missing remote succeeded")
	}
	if res == nil || res.Pushed || res.Branch == "" {
		t.Fatalf("result %+v", res)
	}
	if !strings.Contains(err.Error(), "created locally") || !strings.Contains(err.Error(), res.Branch) {
		t.Errorf("error: %v", err)
	}
	if got := r.git("rev-parse", res.Branch); got != res.Commit {
		t.Errorf("local branch at %s, want %s", got, res.Commit)
	}
	if r.worktrees() != 1 {
		t.Error("worktree left behind")
	}
}

func TestNotAGitRepository(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "main.tf"), []byte(releaseTF("agent", lit("1.2.0"))), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("GIT_CEILING_DIRECTORIES", filepath.Dir(dir))
	_, err := Revert(context.Background(), baseRequest(dir))
	if err == nil || !strings.Contains(err.Error(), "not inside a git work tree") {
		t.Fatalf("error: %v", err)
	}
	if _, err := Revert(context.Background(), baseRequest(filepath.Join(dir, "missing"))); err == nil || !strings.Contains(err.Error(), "not a directory") {
		t.Fatalf("missing dir error: %v", err)
	}
}

func TestBranchAlreadyExists(t *testing.T) {
	r := newRepo(t)
	base := r.commit("base", map[string]string{"main.tf": fleetTF + releaseTF("agent", lit("1.1.0"))})
	r.commit("release 1.2.0", map[string]string{"main.tf": fleetTF + releaseTF("agent", lit("1.2.0"))})
	r.git("branch", "canary/revert-agent-1.2.0-r-202406", base)
	before := r.git("for-each-ref")

	res, err := Revert(context.Background(), baseRequest(r.dir))
	if err == nil || !strings.Contains(err.Error(), "already exists") || res != nil {
		t.Fatalf("res %+v err %v", res, err)
	}
	if r.git("for-each-ref") != before || r.worktrees() != 1 {
		t.Error("repository changed")
	}
}

func TestBadRequests(t *testing.T) {
	for _, req := range []Request{
		{Resource: "canary_release.agent", FailedVersion: "1"},
		{Dir: ".", Resource: "agent", FailedVersion: "1"},
		{Dir: ".", Resource: "canary_fleet.agents", FailedVersion: "1"},
		{Dir: ".", Resource: "canary_release.agent"},
		{Dir: ".", Resource: "canary_release.agent", FailedVersion: "1\n2"},
		{Dir: ".", Resource: "canary_release.agent", FailedVersion: "1", Remote: "--upload-pack=x"},
	} {
		if _, err := Revert(context.Background(), req); err == nil {
			t.Errorf("%+v accepted", req)
		}
	}
}

func TestMessageBoundsEvidence(t *testing.T) {
	req := baseRequest(".")
	req.Evidence = strings.Repeat("é", MaxEvidence) // 2 bytes each
	req.Guard = "g\nInjected-Trailer: x"
	msg := message(req, Candidate{Commit: strings.Repeat("a", 40), Subject: "s"})
	if len(msg) > MaxEvidence+2048 {
		t.Fatalf("message is %d bytes", len(msg))
	}
	if !strings.Contains(msg, "more bytes of evidence truncated") || !strings.Contains(msg, "guard: g Injected-Trailer: x\n") {
		t.Fatalf("message:\n%s", msg)
	}
	if !strings.HasSuffix(msg, footer+"\n") {
		t.Fatal("footer missing")
	}
	for _, r := range msg {
		if r == '\uFFFD' {
			t.Fatal("evidence cut inside a rune")
		}
	}
}

func TestBranchNameSanitised(t *testing.T) {
	req := baseRequest(".")
	req.BranchPrefix = defaultPrefix
	req.FailedVersion = "1.2.0..rc1 ~^:"
	req.RunID = "../../x"
	b := branchName(req, "agent")
	if b != "canary/revert-agent-1.2.0.rc1-x" {
		t.Fatalf("branch %q", b)
	}
}
