package gitaudit

import (
	"slices"
	"testing"
)

func TestConfigNativeSyntax(t *testing.T) {
	c := newModuleConfig()
	c.addFile("main.tf", `
/* a block comment with "1.2.0" { */
resource "canary_release" "agent" {
  version = local.v   // comment
  deploy  = { command = "echo ${var.x} }" }
  files   = [<<-EOT
    version = "9.9.9"
    EOT
  ]
}
resource "canary_release" "legacy" { version = "${var.legacy_version}" }
resource "canary_release" "tmpl" {
  version = "${var.a}-${var.b}"
}
locals {
  v     = var.agent_version
  other = "2.0.0"
}
module "m" {
  source        = "./m"
  image_version = "1.2.0"
  tag           = "1.2.0"
}
variable "agent_version" {
  default = "1.2.0"
}
`, "1.2.0")
	ids, ok, _ := c.versionRefs("agent")
	if !ok || !ids["local.v"] || !ids["var.agent_version"] || len(ids) != 2 {
		t.Fatalf("agent refs %v %v", ids, ok)
	}
	if ids, ok, _ := c.versionRefs("legacy"); !ok || !ids["var.legacy_version"] {
		t.Fatalf("legacy refs %v %v", ids, ok)
	}
	if _, ok, why := c.versionRefs("tmpl"); ok || why == "" {
		t.Fatal("template version resolved")
	}
	var got []string
	for _, s := range c.sites {
		got = append(got, s.ID+"="+s.Value)
	}
	slices.Sort(got)
	want := []string{"local.other=2.0.0", "module.m.image_version=1.2.0", "var.agent_version=1.2.0"}
	if !slices.Equal(got, want) {
		t.Fatalf("sites %v, want %v", got, want)
	}
	if !c.versionish("var.agent_version") || c.versionish("local.other") || !c.versionish("module.m.image_version") {
		t.Fatal("versionish")
	}
	if g := c.owners("var.agent_version"); !slices.Equal(g, []string{"agent"}) {
		t.Fatalf("owners %v", g)
	}
}

func TestConfigJSONSyntax(t *testing.T) {
	c := newModuleConfig()
	c.addFile("main.tf.json", `{
  "resource": {"canary_release": {"agent": {"version": "${var.agent_version}"}, "sidecar": [{"version": "1.2.0"}]}},
  "variable": {"agent_version": {"default": "1.1.0"}}
}`, "1.2.0")
	c.addFile("terraform.tfvars.json", `{"agent_version": "1.2.0", "n": 3}`, "1.2.0")
	if ids, ok, _ := c.versionRefs("agent"); !ok || !ids["var.agent_version"] {
		t.Fatalf("agent refs %v", ids)
	}
	if ids, ok, _ := c.versionRefs("sidecar"); !ok || !ids["canary_release.sidecar"] {
		t.Fatalf("sidecar refs %v", ids)
	}
	if c.sites[site{ID: "var.agent_version", Where: "terraform.tfvars.json"}.key()].Value != "1.2.0" ||
		c.sites[site{ID: "var.agent_version", Where: "main.tf.json (default)"}.key()].Value != "1.1.0" {
		t.Fatalf("sites %v", c.sites)
	}
	if c.count != 2 {
		t.Fatalf("count %d", c.count)
	}
}

func TestIsConfigFile(t *testing.T) {
	for name, want := range map[string]bool{
		"main.tf": true, "x.tf.json": true, "terraform.tfvars": true, "prod.auto.tfvars": true,
		"a.auto.tfvars.json": true, ".tf": false, "main.tf.bak": false, "README.md": false, ".terraform.lock.hcl": false,
	} {
		if isConfigFile(name) != want {
			t.Errorf("%s: %v", name, !want)
		}
	}
}
