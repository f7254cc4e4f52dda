package tmpl

import (
	"strings"
	"testing"
)

func TestRenderShellQuotesValues(t *testing.T) {
	d := Data{Version: "1.0; touch /tmp/pwned", Host: Host{Name: "agent-1", Vars: map[string]string{"port": "80 81"}}}
	got, err := RenderShell("install {{.Version}} --host {{.Host.Name}} --port {{.Host.Vars.port}}", d)
	if err != nil {
		t.Fatal(err)
	}
	want := `install '1.0; touch /tmp/pwned' --host agent-1 --port '80 81'`
	if got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
}

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		text  string
		shell bool
		err   string
	}{
		{text: "install {{.Version}}", shell: true},
		{text: "echo '{{.Version}}'", shell: true, err: "inside single quotes"},
		{text: `echo "v={{.Version}}"`, shell: true, err: "inside double quotes"},
		{text: `echo "done" {{.Version}} 'x'`, shell: true},
		{text: `echo it\'s {{.Version}}`, shell: true},
		{text: `{{if .PreviousVersion}}install {{.PreviousVersion}}{{else}}uninstall{{end}}`, shell: true},
		{text: `"{{.Version}}"`, shell: false},
		{text: "{{.Vresion}}", err: "can't evaluate field Vresion"},
		{text: "{{.Version", err: "template syntax"},
		{text: "port {{.Host.Vars.agent_port}}", shell: true},
	} {
		err := Validate(tc.text, tc.shell)
		switch {
		case tc.err == "" && err != nil:
			t.Errorf("Validate(%q): unexpected error %v", tc.text, err)
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("Validate(%q) = %v, want error containing %q", tc.text, err, tc.err)
		}
	}
}

func TestRenderMissingHostVar(t *testing.T) {
	_, err := Render("{{.Host.Vars.agent_port}}", Data{Host: Host{Name: "a", Vars: map[string]string{}}})
	if err == nil || !strings.Contains(err.Error(), "agent_port") {
		t.Fatalf("want an error naming the missing var, got %v", err)
	}
}
