package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/canaryops/terraform-provider-canary/internal/devfleet"
)

// status prints, per host, the installed version, the agent's answer and the release markers.
func status(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("status", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dir := fs.String("dir", "", "fleet directory")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *dir == "" {
		fmt.Fprintln(stderr, "devfleet status: --dir is required")
		return 2
	}
	b, err := os.ReadFile(filepath.Join(*dir, inventoryFileName))
	if err != nil {
		fmt.Fprintf(stderr, "devfleet status: no running fleet in %s: %v\n", *dir, err)
		return 1
	}
	var inv devfleet.Inventory
	if err := json.Unmarshal(b, &inv); err != nil {
		fmt.Fprintf(stderr, "devfleet status: %v\n", err)
		return 1
	}
	client := &http.Client{Timeout: time.Second}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "HOST\tVERSION\tAGENT\tRELEASE MARKERS")
	for _, h := range inv.Hosts {
		v, _ := os.ReadFile(filepath.Join(h.Dir, "agent", "VERSION"))
		version := strings.TrimSpace(string(v))
		if version == "" {
			version = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", h.Name, version, agentAnswer(client, h.AgentPort), markers(h.Dir))
	}
	_ = tw.Flush()
	return 0
}

func agentAnswer(c *http.Client, port int) string {
	resp, err := c.Get(fmt.Sprintf("http://127.0.0.1:%d/healthz", port))
	if err != nil {
		return "down"
	}
	defer resp.Body.Close()
	var body struct {
		Status string `json:"status"`
	}
	_ = json.NewDecoder(io.LimitReader(resp.Body, 4096)).Decode(&body)
	return fmt.Sprintf("%d %s", resp.StatusCode, body.Status)
}

// markers summarizes the rollout engine's markers (~/.canary/releases/*.json) on a host.
func markers(home string) string {
	files, _ := filepath.Glob(filepath.Join(home, ".canary", "releases", "*.json"))
	sort.Strings(files)
	var out []string
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		var m struct {
			Release         string `json:"release"`
			Version         string `json:"version"`
			PreviousVersion string `json:"previous_version"`
			Status          string `json:"status"`
			RunID           string `json:"run_id"`
		}
		if json.Unmarshal(b, &m) != nil {
			out = append(out, filepath.Base(f)+": unreadable")
			continue
		}
		out = append(out, fmt.Sprintf("%s: %s %s (was %s, %s)", m.Release, m.Status, m.Version, orNone(m.PreviousVersion), m.RunID))
	}
	if len(out) == 0 {
		return "-"
	}
	return strings.Join(out, "; ")
}

func orNone(s string) string {
	if s == "" {
		return "nothing"
	}
	return s
}
