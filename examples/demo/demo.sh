#!/usr/bin/env bash
# make demo: a 5-host fleet of real sshd hosts, then with the real Terraform CLI:
#   1. plan 1.1.0 (the dry run: the rollout plan, no host touched)
#   2. apply 1.1.0: canary first, then the waves
#   3. apply 1.2.0, a bad version: caught on the canary and reverted
#   4. destroy: every host back at the version it ran before the release
# It prints what happened to which host and leaves no process behind.
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
tf=${TERRAFORM:-terraform}
bin="$root/bin"
work=$(mktemp -d "${TMPDIR:-/tmp}/canary-demo.XXXXXX")
fleet="$work/fleet"

cleanup() {
  "$bin/devfleet" down --dir "$fleet" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
fail() { printf '\ndemo FAILED: %s\n' "$*" >&2; exit 1; }

versions() { # host=version ... as the hosts report it
  local out=""
  for d in "$fleet"/host-*; do
    out+="$(basename "$d")=$(cat "$d/agent/VERSION" 2>/dev/null || echo none) "
  done
  echo "${out% }"
}

expect_versions() {
  local want="$1" got
  got=$(versions)
  [ "$got" = "$want" ] || fail "hosts run: $got; expected: $want"
}

say "Starting a fleet of 5 real sshd hosts running agent 1.0.0 (1.2.0 is a bad build that answers 503)"
"$bin/devfleet" up --hosts 5 --dir "$fleet" --initial-version 1.0.0 --behavior 1.2.0=unhealthy >"$work/devfleet.log" 2>&1 &
for _ in $(seq 150); do
  [ -f "$fleet/inventory.json" ] && break
  kill -0 $! 2>/dev/null || { cat "$work/devfleet.log" >&2; fail "devfleet up exited"; }
  sleep 0.2
done
[ -f "$fleet/inventory.json" ] || fail "the fleet did not come up; see the log above"
"$bin/devfleet" status --dir "$fleet"

mkdir "$work/tf"
cp "$root/examples/demo/main.tf" "$fleet/fleet.auto.tfvars.json" "$work/tf/"
ssh-keygen -q -t ed25519 -N '' -C canary-demo-signing -f "$work/signing_key"
export TF_VAR_signing_key_file="$work/signing_key"
cat >"$work/dev.tfrc" <<RC
provider_installation {
  dev_overrides {
    "registry.terraform.io/canaryops/canary" = "$bin"
    "registry.opentofu.org/canaryops/canary" = "$bin"
  }
  direct {}
}
RC
export TF_CLI_CONFIG_FILE="$work/dev.tfrc" CHECKPOINT_DISABLE=1 TF_IN_AUTOMATION=1
cd "$work/tf"
tfq() { "$tf" "$1" -no-color -input=false "${@:2}" 2>&1 | grep -v -e 'Provider development overrides' -e 'development overrides are set' -e 'canaryops/canary in' -e 'may therefore not match' -e 'may cause the state' -e 'published releases' -e '^Warning: *$' -e '^│ *$' ; }

say "1. terraform plan with version 1.1.0: the dry run"
tfq plan -var agent_version=1.1.0 -out plan.bin >"$work/plan.txt" || { cat "$work/plan.txt"; fail "plan failed"; }
# The resource's rollout_plan: from its line to the bracket that closes it.
awk '!p && /\+ rollout_plan/ { p = 1; ind = index($0, "+") + 1 }
     p { print }
     p && length($0) == ind && substr($0, ind) == "]" { exit }' "$work/plan.txt"
grep -E '^Plan:' "$work/plan.txt"
expect_versions "host-1=1.0.0 host-2=1.0.0 host-3=1.0.0 host-4=1.0.0 host-5=1.0.0"
echo "No host was touched by the plan."

say "2. terraform apply 1.1.0: canary first, then the waves"
tfq apply plan.bin >"$work/apply1.txt" || { cat "$work/apply1.txt"; fail "apply 1.1.0 failed"; }
grep -E 'Creation complete|Apply complete' "$work/apply1.txt"
"$bin/devfleet" status --dir "$fleet"
expect_versions "host-1=1.1.0 host-2=1.1.0 host-3=1.1.0 host-4=1.1.0 host-5=1.1.0"

say "The signed release index (canary-runner status)"
"$bin/canary-runner" status --ledger-dir "$work/tf/.canary" --signing-key-file "$work/signing_key"
"$bin/canary-runner" verify --ledger-dir "$work/tf/.canary" --signing-key-file "$work/signing_key"

say "3. terraform apply 1.2.0: a bad build"
if tfq apply -auto-approve -var agent_version=1.2.0 >"$work/apply2.txt"; then
  cat "$work/apply2.txt"; fail "the bad version was not caught"
fi
sed -n '/Error: /,/run_id/p' "$work/apply2.txt" | sed -e 's/^[│╷╵] \{0,1\}//'
"$bin/devfleet" status --dir "$fleet"
expect_versions "host-1=1.1.0 host-2=1.1.0 host-3=1.1.0 host-4=1.1.0 host-5=1.1.0"
echo "The canary caught 1.2.0 and was reverted; no other host was touched."

say "4. terraform destroy: roll the release back"
tfq destroy -auto-approve -var agent_version=1.1.0 >"$work/destroy.txt" || { cat "$work/destroy.txt"; fail "destroy failed"; }
sed -n '/Destroy Rolls Hosts Back/,/Set on_destroy/p' "$work/destroy.txt" | sed -e 's/^[│╷╵] \{0,1\}//' | grep -v on_destroy
grep -E 'Destroy complete' "$work/destroy.txt"
"$bin/devfleet" status --dir "$fleet"
expect_versions "host-1=1.0.0 host-2=1.0.0 host-3=1.0.0 host-4=1.0.0 host-5=1.0.0"

say "The signed release index after the whole story"
"$bin/canary-runner" status --ledger-dir "$work/tf/.canary" --signing-key-file "$work/signing_key" | sed -n '1,3p'
"$bin/canary-runner" verify --ledger-dir "$work/tf/.canary" --signing-key-file "$work/signing_key"

say "Done"
echo "1.1.0 rolled out canary first; 1.2.0 stopped on host-1 and reverted; destroy put all 5 hosts back on 1.0.0."
