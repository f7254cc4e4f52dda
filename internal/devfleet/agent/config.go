// Package agent is the devfleet demo agent: a tiny HTTP service with a
// /healthz endpoint whose behaviour depends on the installed version, plus
// agentctl, the command that installs, swaps and stops it on a fleet host.
//
// One binary plays every role. Invoked as "agentctl" (argv[0] base name) or
// with a first argument "agent"/"agentctl" it runs Main; the installed copies
// at $HOME/agent/versions/VERSION/agent run the service ("agent run VERSION").
//
// Layout under a host's $HOME:
//
//	bin/agentctl                 the control command (on PATH in SSH sessions)
//	agent/VERSION                installed version, written atomically
//	agent/versions/V/agent       the binary of version V
//	agent/agent.pid              pid of the running agent
//	agent/agent.log              agent stdout+stderr (reopened on SIGHUP)
//	.devfleet/host.json          host configuration (fallback for the env)
package agent

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"time"
)

// Environment variables set for every SSH session of a devfleet host (via
// sshd_config SetEnv) and for every agent process.
const (
	EnvHost           = "DEVFLEET_HOST"             // host name, e.g. host-1
	EnvAgentPort      = "DEVFLEET_AGENT_PORT"       // the agent's HTTP port on 127.0.0.1
	EnvBehaviors      = "DEVFLEET_BEHAVIORS"        // path of the fleet's behaviors JSON file
	EnvOwnerPID       = "DEVFLEET_OWNER_PID"        // pid of the process that owns the fleet
	EnvOwnerStart     = "DEVFLEET_OWNER_START"      // its start time (/proc stat field 22); guards against pid reuse
	EnvSlowStartDelay = "DEVFLEET_SLOW_START_DELAY" // Go duration for the "slow" behavior
	EnvPanicDelay     = "DEVFLEET_PANIC_DELAY"      // Go duration for the "panic" behavior

	envReadyFD = "DEVFLEET_READY_FD" // internal: fd the agent writes "ok" to once it is serving
)

// Behaviors of the agent, by version. They mirror devfleet.Behavior.
const (
	BehaviorHealthy      = "healthy"
	BehaviorUnhealthy    = "unhealthy"
	BehaviorCrashOnStart = "crash"
	BehaviorPanicLater   = "panic"
	BehaviorSlowStart    = "slow"
)

// KnownBehavior reports whether b is one of the Behavior constants.
func KnownBehavior(b string) bool {
	switch b {
	case BehaviorHealthy, BehaviorUnhealthy, BehaviorCrashOnStart, BehaviorPanicLater, BehaviorSlowStart:
		return true
	}
	return false
}

// Default delays for the slow and panic behaviors.
const (
	DefaultSlowStartDelay = 3 * time.Second
	DefaultPanicDelay     = 3 * time.Second
)

var versionRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$`)

// VersionPattern is the pattern every installable version must match.
const VersionPattern = `^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$`

// ValidVersion reports whether v may be installed.
func ValidVersion(v string) bool { return versionRE.MatchString(v) }

// Paths under a host's home directory.
func agentDir(home string) string { return filepath.Join(home, "agent") }

// VersionFile is the file holding the installed version.
func VersionFile(home string) string { return filepath.Join(home, "agent", "VERSION") }

// PIDFile is the pid file of the running agent.
func PIDFile(home string) string { return filepath.Join(home, "agent", "agent.pid") }

// LogFile is the agent's log file.
func LogFile(home string) string { return filepath.Join(home, "agent", "agent.log") }

// BinaryPath is where version v's binary is installed.
func BinaryPath(home, v string) string { return filepath.Join(home, "agent", "versions", v, "agent") }

// HostConfigFile is the host configuration file agentctl falls back to when
// the DEVFLEET_* environment is missing (for example under sudo).
func HostConfigFile(home string) string { return filepath.Join(home, ".devfleet", "host.json") }

// Config is what agentctl and the agent need to know about their host.
type Config struct {
	Home           string        // the host directory ($HOME)
	Host           string        // host name
	AgentPort      int           // HTTP port on 127.0.0.1
	BehaviorsFile  string        // fleet behaviors file
	OwnerPID       int           // agents exit when this process is gone (0: never)
	OwnerStart     uint64        // start time of OwnerPID (0: not checked)
	SlowStartDelay time.Duration // for BehaviorSlowStart
	PanicDelay     time.Duration // for BehaviorPanicLater
}

type hostFile struct {
	Host           string `json:"host"`
	AgentPort      int    `json:"agent_port"`
	BehaviorsFile  string `json:"behaviors_file"`
	OwnerPID       int    `json:"owner_pid"`
	OwnerStart     uint64 `json:"owner_start,omitempty"`
	SlowStartDelay string `json:"slow_start_delay"`
	PanicDelay     string `json:"panic_delay"`
}

// Env returns the DEVFLEET_* variables describing c (HOME is not included).
func (c Config) Env() []string {
	return []string{
		EnvHost + "=" + c.Host,
		EnvAgentPort + "=" + strconv.Itoa(c.AgentPort),
		EnvBehaviors + "=" + c.BehaviorsFile,
		EnvOwnerPID + "=" + strconv.Itoa(c.OwnerPID),
		EnvOwnerStart + "=" + strconv.FormatUint(c.OwnerStart, 10),
		EnvSlowStartDelay + "=" + c.SlowStartDelay.String(),
		EnvPanicDelay + "=" + c.PanicDelay.String(),
	}
}

// WriteHostConfig writes c to HostConfigFile(c.Home).
func WriteHostConfig(c Config) error {
	b, err := json.MarshalIndent(hostFile{
		Host:           c.Host,
		AgentPort:      c.AgentPort,
		BehaviorsFile:  c.BehaviorsFile,
		OwnerPID:       c.OwnerPID,
		OwnerStart:     c.OwnerStart,
		SlowStartDelay: c.SlowStartDelay.String(),
		PanicDelay:     c.PanicDelay.String(),
	}, "", "  ")
	if err != nil {
		return err
	}
	p := HostConfigFile(c.Home)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	return WriteFileAtomic(p, append(b, '\n'), 0o644)
}

// LoadConfig builds the Config of the current host from the environment:
// HOME, then the DEVFLEET_* variables, each falling back to the host config
// file. A variable that is set but empty disables the value (for example
// DEVFLEET_OWNER_PID= turns off the owner check).
func LoadConfig() (Config, error) {
	home := os.Getenv("HOME")
	if home == "" {
		return Config{}, errors.New("HOME is not set")
	}
	home, err := filepath.Abs(home)
	if err != nil {
		return Config{}, err
	}
	c := Config{Home: home, SlowStartDelay: DefaultSlowStartDelay, PanicDelay: DefaultPanicDelay}
	if b, err := os.ReadFile(HostConfigFile(home)); err == nil {
		var hf hostFile
		if err := json.Unmarshal(b, &hf); err != nil {
			return Config{}, fmt.Errorf("read %s: %w", HostConfigFile(home), err)
		}
		c.Host, c.AgentPort, c.BehaviorsFile = hf.Host, hf.AgentPort, hf.BehaviorsFile
		c.OwnerPID, c.OwnerStart = hf.OwnerPID, hf.OwnerStart
		if d, err := time.ParseDuration(hf.SlowStartDelay); err == nil {
			c.SlowStartDelay = d
		}
		if d, err := time.ParseDuration(hf.PanicDelay); err == nil {
			c.PanicDelay = d
		}
	}
	if v, ok := os.LookupEnv(EnvHost); ok {
		c.Host = v
	}
	if v, ok := os.LookupEnv(EnvBehaviors); ok {
		c.BehaviorsFile = v
	}
	intEnv := func(name string, dst *int) error {
		v, ok := os.LookupEnv(name)
		if !ok {
			return nil
		}
		if v == "" {
			*dst = 0
			return nil
		}
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return fmt.Errorf("%s=%q is not a valid number", name, v)
		}
		*dst = n
		return nil
	}
	if err := intEnv(EnvAgentPort, &c.AgentPort); err != nil {
		return Config{}, err
	}
	if err := intEnv(EnvOwnerPID, &c.OwnerPID); err != nil {
		return Config{}, err
	}
	if v, ok := os.LookupEnv(EnvOwnerStart); ok {
		c.OwnerStart = 0
		if v != "" {
			n, err := strconv.ParseUint(v, 10, 64)
			if err != nil {
				return Config{}, fmt.Errorf("%s=%q is not a valid number", EnvOwnerStart, v)
			}
			c.OwnerStart = n
		}
	}
	durEnv := func(name string, dst *time.Duration) error {
		v, ok := os.LookupEnv(name)
		if !ok || v == "" {
			return nil
		}
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 {
			return fmt.Errorf("%s=%q is not a valid duration", name, v)
		}
		*dst = d
		return nil
	}
	if err := durEnv(EnvSlowStartDelay, &c.SlowStartDelay); err != nil {
		return Config{}, err
	}
	if err := durEnv(EnvPanicDelay, &c.PanicDelay); err != nil {
		return Config{}, err
	}
	if c.Host == "" {
		c.Host = filepath.Base(home)
	}
	return c, nil
}

// ReadBehaviors reads a behaviors file: a JSON object {"version":"behavior"}.
// A missing file means no behaviors (every version healthy).
func ReadBehaviors(path string) (map[string]string, error) {
	m := map[string]string{}
	if path == "" {
		return m, nil
	}
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return m, nil
	}
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("parse %s: %w", path, err)
	}
	return m, nil
}

// WriteFileAtomic writes data to a temporary file next to path and renames it
// into place, so readers see either the old or the new content.
func WriteFileAtomic(path string, data []byte, perm os.FileMode) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, werr := f.Write(data)
	if werr == nil {
		werr = f.Chmod(perm)
	}
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr == nil {
		werr = os.Rename(tmp, path)
	}
	if werr != nil {
		_ = os.Remove(tmp)
	}
	return werr
}
