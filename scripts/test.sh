#!/usr/bin/env bash
# Every test of the cafe: the Rust workspace (`cargo test --workspace`), the pages in a
# real browser (web-tests/, Debian's Chromium driven by playwright-core against the real
# `cafe` binary) and the public API fuzzed from its OpenAPI description (scripts/fuzz.sh:
# schemathesis against the real `cafe` binary, as a manager, a customer and with auth off).
# Installs what is missing first (Chromium with apt-get, the browser suite's packages with
# `npm ci`, and schemathesis and openapi-spec-validator, pinned, into a virtualenv of its own under
# ~/.cache/cafe/ made with `python3 -m venv`, installing python3-venv with apt-get if
# needed) and fails loudly if anything cannot run.
#
#   bash scripts/test.sh            everything
#   bash scripts/test.sh --browser  the browser suite only (builds the binary first)
#   bash scripts/test.sh --fuzz     the fuzzing only (builds the binary first)
set -euo pipefail
cd "$(dirname "$0")/.."

die() { echo "test.sh: $*" >&2; exit 1; }

# The browser suite's needs.
if [ "${1:-}" != "--fuzz" ]; then
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
fi

if [ "${1:-}" != "--browser" ] && [ "${1:-}" != "--fuzz" ]; then
  cargo test --workspace
fi

# The browser suite and the fuzzing run the binary the workspace builds.
cargo build --bin cafe
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
# The binary just built, not an older or newer one of another profile.
export CAFE_BIN="$CARGO_TARGET_DIR/debug/cafe"
if [ "${1:-}" != "--fuzz" ]; then
  (cd web-tests && npm test)
fi
if [ "${1:-}" != "--browser" ]; then
  bash scripts/fuzz.sh
fi
