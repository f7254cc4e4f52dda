#!/usr/bin/env bash
# make docs: regenerate docs/ with tfplugindocs, offline, with Terraform or OpenTofu. The provider
# schema is exported through a development override (no registry, no init), then tfplugindocs
# renders it with examples/ and templates/.
set -euo pipefail
cd "$(dirname "$0")/.."
tf=$(.ci/prereqs.sh | tail -n 1)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/bin" "$work/ws"
go build -o "$work/bin/terraform-provider-canary" .
cat >"$work/dev.tfrc" <<RC
provider_installation {
  dev_overrides {
    "registry.terraform.io/hashicorp/canary" = "$work/bin"
    "registry.opentofu.org/hashicorp/canary" = "$work/bin"
  }
  direct {}
}
RC
echo 'provider "canary" {}' >"$work/ws/main.tf"
TF_CLI_CONFIG_FILE="$work/dev.tfrc" CHECKPOINT_DISABLE=1 "$tf" -chdir="$work/ws" providers schema -json >"$work/schema.json" 2>"$work/schema.err" ||
  { cat "$work/schema.err" >&2; exit 1; }
# tfplugindocs looks the schema up under Terraform's registry address.
sed -i 's#"registry.opentofu.org/hashicorp/canary"#"registry.terraform.io/hashicorp/canary"#' "$work/schema.json"
CHECKPOINT_DISABLE=1 go run github.com/hashicorp/terraform-plugin-docs/cmd/tfplugindocs@v0.25.0 generate \
  --provider-name canary --rendered-provider-name Canary --providers-schema "$work/schema.json"
