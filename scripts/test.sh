#!/usr/bin/env bash
# Every test of the cafe: the Rust workspace (`cargo test --workspace`) and the pages in a
# real browser (web-tests/, Debian's Chromium driven by playwright-core against the real
# `cafe` binary). Installs what is missing first (Chromium with apt-get, the browser suite's
# packages with `npm ci`) and fails loudly if anything cannot run.
#
#   bash scripts/test.sh            everything
#   bash scripts/test.sh --browser  the browser suite only (builds the binary first)
set -euo pipefail
cd "$(dirname "$0")/.."

die() { echo "test.sh: $*" >&2; exit 1; }

if ! command -v chromium >/dev/null 2>&1 && [ ! -x /usr/bin/chromium ]; then
  echo "test.sh: installing Chromium from the distribution (apt-get install chromium)"
  command -v apt-get >/dev/null || die "Chromium is missing and there is no apt-get to install it"
  sudo_=""; [ "$(id -u)" -ne 0 ] && sudo_="sudo"
  $sudo_ apt-get update -qq || die "apt-get update failed"
  $sudo_ apt-get install -y -qq chromium >/dev/null || die "cannot install chromium"
fi
command -v node >/dev/null || die "node is missing (Node.js 18 or newer runs the browser suite)"
command -v npm >/dev/null || die "npm is missing"
if [ ! -d web-tests/node_modules/playwright-core ] || [ web-tests/package-lock.json -nt web-tests/node_modules/.package-lock.json ]; then
  (cd web-tests && npm ci --no-audit --no-fund) || die "npm ci in web-tests failed"
fi

if [ "${1:-}" != "--browser" ]; then
  cargo test --workspace
fi

# The browser suite runs the binary the workspace builds.
cargo build --bin cafe
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
# The binary just built, not an older or newer one of another profile.
export CAFE_BIN="$CARGO_TARGET_DIR/debug/cafe"
(cd web-tests && npm test)
