#!/usr/bin/env bash
# Installs what the test suite needs and prints the path of a Terraform-compatible CLI on its last
# line. Idempotent; used by `make test`, `make testacc`, `make demo` and `make docs`.
#   - OpenSSH's sshd (Debian package openssh-server) for the devfleet hosts, via apt-get as root.
#   - terraform on PATH, or else OpenTofu built from the Go module proxy into a cache (no binary is
#     downloaded from a website; the module source comes through the Go proxy).
set -euo pipefail

TOFU_VERSION="${TOFU_VERSION:-v1.10.6}"
CACHE="${CANARY_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/terraform-provider-canary}"

log() { echo "prereqs: $*" >&2; }

ensure_sshd() {
  if command -v sshd >/dev/null 2>&1 || [ -x /usr/sbin/sshd ]; then
    return 0
  fi
  if [ "$(id -u)" != 0 ]; then
    log "sshd is missing and this is not root: install the openssh-server package (sudo apt-get install openssh-server)"
    exit 1
  fi
  log "installing openssh-server with apt-get"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq --no-install-recommends openssh-server >&2
  # The package's own sshd service is not needed; devfleet runs its own.
}

ensure_terraform() {
  if [ -n "${TF_ACC_TERRAFORM_PATH:-}" ] && [ -x "${TF_ACC_TERRAFORM_PATH}" ]; then
    echo "$TF_ACC_TERRAFORM_PATH"; return 0
  fi
  if command -v terraform >/dev/null 2>&1; then
    command -v terraform; return 0
  fi
  if command -v tofu >/dev/null 2>&1; then
    command -v tofu; return 0
  fi
  local bin="$CACHE/tofu-$TOFU_VERSION/tofu"
  if [ -x "$bin" ]; then
    echo "$bin"; return 0
  fi
  log "no terraform on PATH: building OpenTofu $TOFU_VERSION from the Go module proxy (about 4 minutes, once)"
  local dir src
  dir=$(go mod download -json "github.com/opentofu/opentofu@$TOFU_VERSION" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
  [ -d "$dir" ] || { log "go mod download did not give a source directory for opentofu $TOFU_VERSION"; exit 1; }
  src=$(mktemp -d)
  cp -r "$dir/." "$src/"
  chmod -R u+w "$src"
  mkdir -p "$(dirname "$bin")"
  (cd "$src" && GOFLAGS=-mod=mod go build -trimpath -ldflags "-s -w" -o "$bin.tmp" ./cmd/tofu) >&2
  mv "$bin.tmp" "$bin"
  rm -rf "$src"
  echo "$bin"
}

ensure_sshd
ensure_terraform
