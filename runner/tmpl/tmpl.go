// Package tmpl renders the runtime values of a rollout ({{.Version}}, {{.PreviousVersion}},
// {{.Host.Name}}, ...) into commands, URLs and patterns. Terraform owns ${...}; the runner owns {{...}}.
//
// Shell commands are rendered with every value shell-quoted, so a version string cannot inject
// commands. Because quoting is done for the operator, a value placed inside quotes in the template
// ('{{.Version}}' or "{{.Version}}") would defeat it; Validate with Shell set refuses such templates.
package tmpl

import (
	"bytes"
	"fmt"
	"strings"
	"text/template"
	"text/template/parse"
	"time"

	sshx "github.com/canaryops/terraform-provider-canary/runner/ssh"
)

// Host is the host a value is rendered for.
type Host struct {
	Name    string
	Address string
	Vars    map[string]string
}

// Data is what a template sees. Version is the version the host is expected to run at the time of
// rendering: the target during deploy and observation, the previous version during revert and the
// current version before the release (preflight).
type Data struct {
	Version         string
	PreviousVersion string
	Release         string
	Fleet           string
	Stage           string
	RunID           string
	Host            Host
	DeployedAt      time.Time
}

func parseTemplate(name, text string, missingKey string) (*template.Template, error) {
	t, err := template.New(name).Option("missingkey=" + missingKey).Parse(text)
	if err != nil {
		return nil, fmt.Errorf("template syntax: %s", cleanErr(err, name))
	}
	return t, nil
}

// sample data used to check that every field a template names exists.
var sample = Data{
	Version: "1.0.0", PreviousVersion: "0.9.0", Release: "r", Fleet: "f", Stage: "canary", RunID: "run",
	Host: Host{Name: "h", Address: "127.0.0.1"},
}

// Validate checks a template's syntax and that it names only known fields. With shell set it also
// refuses values placed inside quotes, where the automatic quoting could not protect them.
func Validate(text string, shell bool) error {
	// Host.Vars keys differ per host and are checked when rendering for a host; unknown struct
	// fields still fail here.
	t, err := parseTemplate("t", text, "zero")
	if err != nil {
		return err
	}
	if err := t.Execute(discard{}, sample); err != nil {
		return fmt.Errorf("template: %s", cleanErr(err, "t"))
	}
	if shell {
		return checkShellContext(t.Root)
	}
	return nil
}

// Render renders text with data and no quoting (URLs, bodies, patterns).
func Render(text string, d Data) (string, error) {
	t, err := parseTemplate("t", text, "error")
	if err != nil {
		return "", err
	}
	var b bytes.Buffer
	if err := t.Execute(&b, d); err != nil {
		return "", fmt.Errorf("template: %s", cleanErr(err, "t"))
	}
	return b.String(), nil
}

// RenderShell renders a shell command: every value substituted is shell-quoted.
func RenderShell(text string, d Data) (string, error) {
	Quote := sshx.Quote
	q := Data{
		Version: Quote(d.Version), PreviousVersion: Quote(d.PreviousVersion), Release: Quote(d.Release),
		Fleet: Quote(d.Fleet), Stage: Quote(d.Stage), RunID: Quote(d.RunID), DeployedAt: d.DeployedAt,
		Host: Host{Name: Quote(d.Host.Name), Address: Quote(d.Host.Address), Vars: map[string]string{}},
	}
	for k, v := range d.Host.Vars {
		q.Host.Vars[k] = Quote(v)
	}
	return Render(text, q)
}

// checkShellContext walks the template in order, tracking the shell quoting state of the literal
// text, and refuses an action that falls inside single or double quotes.
func checkShellContext(root *parse.ListNode) error {
	var state byte // 0 = unquoted, '\'' or '"'
	var walk func(n parse.Node) error
	walk = func(n parse.Node) error {
		switch n := n.(type) {
		case *parse.ListNode:
			if n == nil {
				return nil
			}
			for _, c := range n.Nodes {
				if err := walk(c); err != nil {
					return err
				}
			}
		case *parse.TextNode:
			state = scanQuotes(state, string(n.Text))
		case *parse.ActionNode:
			if state != 0 {
				return fmt.Errorf("%s is inside %s quotes: values are shell-quoted for you, remove the quotes around it",
					n.String(), map[byte]string{'\'': "single", '"': "double"}[state])
			}
		case *parse.IfNode:
			return walkBranches(walk, &state, n.List, n.ElseList)
		case *parse.RangeNode:
			return walkBranches(walk, &state, n.List, n.ElseList)
		case *parse.WithNode:
			return walkBranches(walk, &state, n.List, n.ElseList)
		}
		return nil
	}
	return walk(root)
}

func walkBranches(walk func(parse.Node) error, state *byte, lists ...*parse.ListNode) error {
	start := *state
	for _, l := range lists {
		*state = start
		if l == nil {
			continue
		}
		if err := walk(l); err != nil {
			return err
		}
	}
	return nil
}

func scanQuotes(state byte, s string) byte {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch state {
		case 0:
			switch c {
			case '\\':
				i++
			case '\'', '"':
				state = c
			}
		case '\'':
			if c == '\'' {
				state = 0
			}
		case '"':
			switch c {
			case '\\':
				i++
			case '"':
				state = 0
			}
		}
	}
	return state
}

func cleanErr(err error, name string) string {
	s := err.Error()
	s = strings.TrimPrefix(s, "template: ")
	s = strings.TrimPrefix(s, name+":")
	return strings.TrimSpace(s)
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }
