package runner

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
)

func fleetOf(n int) []Host {
	hs := make([]Host, n)
	for i := range hs {
		hs[i] = Host{Name: fmt.Sprintf("agent-%d", i+1), Address: "10.0.0.1"}
	}
	return hs
}

func TestPlanRolloutCumulativeStages(t *testing.T) {
	p, err := PlanRollout(fleetOf(10), []Stage{{Name: "canary", Hosts: "1"}, {Name: "wave", Hosts: "25%"}, {Name: "fleet", Hosts: "100%"}})
	if err != nil {
		t.Fatal(err)
	}
	got := [][]string{}
	for _, s := range p.Stages {
		got = append(got, s.Hosts)
	}
	want := [][]string{{"agent-1"}, {"agent-2", "agent-3"}, {"agent-4", "agent-5", "agent-6", "agent-7", "agent-8", "agent-9", "agent-10"}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	if p.StageOf("agent-3") != "wave" || p.StageOf("nope") != "" {
		t.Fatalf("StageOf wrong")
	}
}

func TestPlanRolloutPercentRoundsUp(t *testing.T) {
	for _, tc := range []struct {
		n    int
		size string
		want int
	}{{10, "25%", 3}, {4, "25%", 1}, {30, "10%", 3}, {3, "1%", 1}, {7, "50%", 4}, {10000, "0.5%", 50}} {
		got, err := ParseStageSize(tc.size, tc.n)
		if err != nil || got != tc.want {
			t.Errorf("ParseStageSize(%q, %d) = %d, %v; want %d", tc.size, tc.n, got, err, tc.want)
		}
	}
}

func TestPlanRolloutErrorsNameTheField(t *testing.T) {
	for _, tc := range []struct {
		name   string
		hosts  []Host
		stages []Stage
		field  string
		msg    string
	}{
		{"percent over 100", fleetOf(4), []Stage{{Name: "a", Hosts: "150%"}}, "stages[0].hosts", "at most 100%"},
		{"not a size", fleetOf(4), []Stage{{Name: "a", Hosts: "half"}}, "stages[0].hosts", "not a host count"},
		{"zero hosts", fleetOf(4), []Stage{{Name: "a", Hosts: "0"}}, "stages[0].hosts", "at least 1"},
		{"more than fleet", fleetOf(4), []Stage{{Name: "a", Hosts: "5"}}, "stages[0].hosts", "more hosts than the fleet has (4)"},
		{"adds no host", fleetOf(4), []Stage{{Name: "a", Hosts: "1"}, {Name: "b", Hosts: "25%"}, {Name: "c", Hosts: "100%"}}, "stages[1].hosts", "adds no host"},
		{"last not 100%", fleetOf(4), []Stage{{Name: "a", Hosts: "1"}, {Name: "b", Hosts: "50%"}}, "stages[1].hosts", "must reach the whole fleet"},
		{"no stages", fleetOf(4), nil, "stages", "at least one stage"},
		{"duplicate stage", fleetOf(4), []Stage{{Name: "a", Hosts: "1"}, {Name: "a", Hosts: "100%"}}, "stages[1].name", "duplicate stage name"},
		{"duplicate host", []Host{{Name: "x", Address: "a"}, {Name: "x", Address: "b"}}, []Stage{{Name: "a", Hosts: "100%"}}, "hosts[1].name", "duplicate host name \"x\""},
		{"no hosts", nil, []Stage{{Name: "a", Hosts: "100%"}}, "hosts", "no hosts"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := PlanRollout(tc.hosts, tc.stages)
			ce, ok := err.(*ConfigError)
			if !ok {
				t.Fatalf("want *ConfigError, got %T %v", err, err)
			}
			if ce.Field != tc.field || !strings.Contains(ce.Msg, tc.msg) {
				t.Fatalf("got %s: %s; want %s containing %q", ce.Field, ce.Msg, tc.field, tc.msg)
			}
		})
	}
}

func BenchmarkPlanRollout10k(b *testing.B) {
	hosts := fleetOf(10000)
	stages := []Stage{{Name: "canary", Hosts: "1"}, {Name: "wave", Hosts: "5%"}, {Name: "half", Hosts: "50%"}, {Name: "fleet", Hosts: "100%"}}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := PlanRollout(hosts, stages); err != nil {
			b.Fatal(err)
		}
	}
}
