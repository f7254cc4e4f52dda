package agent

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// The test binary doubles as the agent: Install copies os.Executable() to
// $HOME/agent/versions/V/agent and runs it as "agent run V".
func TestMain(m *testing.M) {
	if IsInvocation(os.Args) {
		os.Exit(Main(os.Args, os.Stdout, os.Stderr))
	}
	// Under -race every exiting process sleeps 1s by default; the agents
	// started from this binary need not.
	os.Setenv("GORACE", "atexit_sleep_ms=0")
	os.Exit(m.Run())
}

func TestValidVersion(t *testing.T) {
	t.Parallel()
	for v, want := range map[string]bool{
		"1.0.0": true, "v2": true, "1.0.0-rc.1+build.5": true, "a_b": true, strings.Repeat("9", 64): true,
		"": false, strings.Repeat("9", 65): false, "-1": false, ".hidden": false, "1.0; touch X": false,
		"../x": false, "a/b": false, "a b": false, "1\n": false, "$(x)": false,
	} {
		if got := ValidVersion(v); got != want {
			t.Errorf("ValidVersion(%q) = %v, want %v", v, got, want)
		}
	}
}

func TestMainUsageErrors(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{
		{"agentctl"},
		{"agentctl", "frobnicate"},
		{"agentctl", "install"},
		{"agentctl", "install", "1", "2"},
		{"agentctl", "install", "1.0; touch X"},
		{"agentctl", "run"},
	} {
		var out, errb bytes.Buffer
		if code := Main(args, &out, &errb); code != 2 || errb.Len() == 0 {
			t.Errorf("Main(%q) = %d, stderr %q; want 2 and a message", args, code, errb.String())
		}
	}
	var errb bytes.Buffer
	Main([]string{"agentctl", "install", "1.0; touch X"}, io.Discard, &errb)
	if !strings.Contains(errb.String(), "invalid version") {
		t.Errorf("stderr %q lacks \"invalid version\"", errb.String())
	}
}

func TestLoadConfigEnvOverridesHostFile(t *testing.T) {
	home := t.TempDir()
	c := Config{Home: home, Host: "h1", AgentPort: 1234, BehaviorsFile: "/b.json", OwnerPID: 42, OwnerStart: 7,
		SlowStartDelay: time.Second, PanicDelay: 2 * time.Second}
	if err := WriteHostConfig(c); err != nil {
		t.Fatal(err)
	}
	t.Setenv("HOME", home)
	for _, kv := range c.Env() {
		k, _, _ := strings.Cut(kv, "=")
		t.Setenv(k, "")
		os.Unsetenv(k)
	}
	got, err := LoadConfig()
	if err != nil || got != c {
		t.Fatalf("from host file: %+v, %v; want %+v", got, err, c)
	}
	t.Setenv(EnvAgentPort, "999")
	t.Setenv(EnvOwnerPID, "")
	t.Setenv(EnvPanicDelay, "10ms")
	got, err = LoadConfig()
	if err != nil || got.AgentPort != 999 || got.OwnerPID != 0 || got.PanicDelay != 10*time.Millisecond || got.Host != "h1" {
		t.Fatalf("with env: %+v, %v", got, err)
	}
	t.Setenv(EnvAgentPort, "x")
	if _, err := LoadConfig(); err == nil {
		t.Fatal("bad port accepted")
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func testConfig(t *testing.T, behaviors map[string]string) Config {
	t.Helper()
	home := t.TempDir()
	bf := filepath.Join(home, "behaviors.json")
	b, _ := json.Marshal(behaviors)
	if err := os.WriteFile(bf, b, 0o644); err != nil {
		t.Fatal(err)
	}
	c := Config{Home: home, Host: "unit", AgentPort: freePort(t), BehaviorsFile: bf, OwnerPID: os.Getpid(),
		SlowStartDelay: time.Second, PanicDelay: time.Second}
	t.Cleanup(func() { _ = Stop(home, StopTimeout) })
	return c
}

func get(t *testing.T, c Config) (int, string) {
	t.Helper()
	resp, err := (&http.Client{Timeout: 3 * time.Second}).Get(fmt.Sprintf("http://127.0.0.1:%d/healthz", c.AgentPort))
	if err != nil {
		return 0, ""
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, strings.TrimSpace(string(b))
}

func TestInstallSwapAndStop(t *testing.T) {
	t.Parallel()
	c := testConfig(t, map[string]string{"2.0.0": BehaviorUnhealthy, "3.0.0": BehaviorCrashOnStart})
	if err := Install(c, "1.0.0"); err != nil {
		t.Fatal(err)
	}
	if code, body := get(t, c); code != 200 || body != `{"version":"1.0.0","status":"ok","host":"unit"}` {
		t.Fatalf("healthz = %d %s", code, body)
	}
	if err := Install(c, "2.0.0"); err != nil {
		t.Fatal(err)
	}
	if code, body := get(t, c); code != 503 || !strings.Contains(body, `"status":"unhealthy"`) {
		t.Fatalf("healthz = %d %s", code, body)
	}
	err := Install(c, "3.0.0")
	if _, ok := err.(*ExitedError); !ok {
		t.Fatalf("installing a crashing version: %v, want *ExitedError", err)
	}
	if _, running := RunningPID(c.Home); running {
		t.Fatal("crashed agent reported running")
	}
	if v, _ := ReadVersion(c.Home); v != "3.0.0" {
		t.Fatalf("version %q", v)
	}
	if err := Uninstall(c); err != nil {
		t.Fatal(err)
	}
	if v, _ := ReadVersion(c.Home); v != "" {
		t.Fatalf("version after uninstall %q", v)
	}
}

func TestConcurrentInstallsSerialize(t *testing.T) {
	t.Parallel()
	c := testConfig(t, nil)
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for i := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- Install(c, fmt.Sprintf("1.%d.0", i))
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	v, _ := ReadVersion(c.Home)
	pid, running := RunningPID(c.Home)
	if !running {
		t.Fatal("no agent running")
	}
	if code, body := get(t, c); code != 200 || !strings.Contains(body, `"version":"`+v+`"`) {
		t.Fatalf("VERSION says %s but pid %d serves %d %s", v, pid, code, body)
	}
}
