package runner

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// Stage is one step of a rollout as configured: its cumulative size and observation window.
type Stage struct {
	Name string
	// Hosts is the cumulative exposure after this stage: a count ("1") or a percentage of the
	// fleet ("25%", rounded up).
	Hosts   string
	Observe time.Duration
}

// Host is one machine of a fleet.
type Host struct {
	Name    string
	Address string // "host" or "host:port"
	// HostKey optionally pins the host's public key (authorized_keys format).
	HostKey string
	Vars    map[string]string
}

// PlannedStage is a stage resolved against a fleet: the hosts it adds, in order.
type PlannedStage struct {
	Name    string
	Hosts   []string // the hosts this stage updates
	Total   int      // cumulative hosts updated once this stage is done
	Observe time.Duration
}

// Plan is the rollout plan: which hosts change in which stage. It is a pure function of the
// configuration, so `terraform plan` and the apply always agree.
type Plan struct {
	Stages []PlannedStage
}

// ConfigError is an error in the rollout configuration. Field names the offending setting in
// the terms of the configuration (for example stages[1].hosts), so adapters can point at it.
type ConfigError struct {
	Field string
	Msg   string
}

func (e *ConfigError) Error() string { return e.Field + ": " + e.Msg }

func cfgErr(field, format string, args ...any) *ConfigError {
	return &ConfigError{Field: field, Msg: fmt.Sprintf(format, args...)}
}

// ParseStageSize parses a stage size: "N" hosts or "P%" of the fleet. It returns the count of hosts
// for a fleet of n.
func ParseStageSize(s string, n int) (int, error) {
	s = strings.TrimSpace(s)
	if p, ok := strings.CutSuffix(s, "%"); ok {
		f, err := strconv.ParseFloat(strings.TrimSpace(p), 64)
		if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
			return 0, fmt.Errorf("%q is not a percentage; write a number of hosts such as \"1\" or a percentage such as \"25%%\"", s)
		}
		if f <= 0 || f > 100 {
			return 0, fmt.Errorf("%q is out of range; a percentage must be above 0%% and at most 100%%", s)
		}
		// Round up, guarding against float noise such as 0.1*30 = 3.0000000000000004.
		c := int(math.Ceil(f*float64(n)/100 - 1e-9))
		return c, nil
	}
	c, err := strconv.Atoi(s)
	if err != nil {
		return 0, fmt.Errorf("%q is not a host count or a percentage; write \"1\", \"3\" or \"25%%\"", s)
	}
	if c < 1 {
		return 0, fmt.Errorf("%q must be at least 1 host", s)
	}
	if c > n {
		return 0, fmt.Errorf("%q is more hosts than the fleet has (%d); use \"100%%\" to mean the whole fleet", s, n)
	}
	return c, nil
}

// ValidateHosts checks host names and addresses.
func ValidateHosts(hosts []Host) error {
	if len(hosts) == 0 {
		return cfgErr("hosts", "the fleet has no hosts; list at least one")
	}
	seen := make(map[string]int, len(hosts))
	for i, h := range hosts {
		if strings.TrimSpace(h.Name) == "" {
			return cfgErr(fmt.Sprintf("hosts[%d].name", i), "a host needs a name")
		}
		if strings.TrimSpace(h.Address) == "" {
			return cfgErr(fmt.Sprintf("hosts[%d].address", i), "host %q needs an address", h.Name)
		}
		if j, dup := seen[h.Name]; dup {
			return cfgErr(fmt.Sprintf("hosts[%d].name", i), "duplicate host name %q (also hosts[%d]); host names must be unique", h.Name, j)
		}
		seen[h.Name] = i
	}
	return nil
}

// PlanRollout turns hosts and stages into the rollout plan. Hosts are taken in the given order.
// Stage sizes are cumulative; each stage must add at least one host and the last must reach the
// whole fleet.
func PlanRollout(hosts []Host, stages []Stage) (Plan, error) {
	if err := ValidateHosts(hosts); err != nil {
		return Plan{}, err
	}
	if len(stages) == 0 {
		return Plan{}, cfgErr("stages", "a release needs at least one stage; for example { name = \"canary\", hosts = \"1\" } then { name = \"fleet\", hosts = \"100%%\" }")
	}
	n := len(hosts)
	plan := Plan{Stages: make([]PlannedStage, 0, len(stages))}
	names := map[string]int{}
	prev := 0
	for i, st := range stages {
		field := fmt.Sprintf("stages[%d]", i)
		if strings.TrimSpace(st.Name) == "" {
			return Plan{}, cfgErr(field+".name", "every stage needs a name")
		}
		if j, dup := names[st.Name]; dup {
			return Plan{}, cfgErr(field+".name", "duplicate stage name %q (also stages[%d])", st.Name, j)
		}
		names[st.Name] = i
		if st.Observe < 0 {
			return Plan{}, cfgErr(field+".observe", "observe must not be negative")
		}
		total, err := ParseStageSize(st.Hosts, n)
		if err != nil {
			return Plan{}, cfgErr(field+".hosts", "%s", err)
		}
		if total <= prev {
			return Plan{}, cfgErr(field+".hosts", "stage %q adds no host: %q is %d of %d hosts, and earlier stages already reach %d; sizes are cumulative, so make it larger than the stage before", st.Name, st.Hosts, total, n, prev)
		}
		ps := PlannedStage{Name: st.Name, Total: total, Observe: st.Observe, Hosts: make([]string, 0, total-prev)}
		for _, h := range hosts[prev:total] {
			ps.Hosts = append(ps.Hosts, h.Name)
		}
		plan.Stages = append(plan.Stages, ps)
		prev = total
	}
	if prev != n {
		last := len(stages) - 1
		return Plan{}, cfgErr(fmt.Sprintf("stages[%d].hosts", last), "the last stage reaches %d of %d hosts; the last stage must reach the whole fleet (\"100%%\")", prev, n)
	}
	return plan, nil
}

// StageOf returns the name of the stage that updates host, or "".
func (p Plan) StageOf(host string) string {
	for _, s := range p.Stages {
		for _, h := range s.Hosts {
			if h == host {
				return s.Name
			}
		}
	}
	return ""
}
