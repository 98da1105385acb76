#!/usr/bin/env bash
# Validates compose.yaml without a Docker engine (compose_test.sh runs it):
#   1. against the Compose Specification's JSON schema, with check-jsonschema
#      from PyPI (pinned below; it vendors the Compose Specification schema as
#      `vendor.compose-spec`); a deliberately broken file must fail it too;
#   2. against the Dockerfile and the repository (tests/stack/check_compose.py).
#
# Usage: tests/stack/compose_check.sh [BUILD_DIR]
#   BUILD_DIR   a build directory with the service binaries: then their shared
#               libraries are checked against the runtime stage's packages.
# check-jsonschema is pip-installed once into the venv of tools/deps,
# ${XDG_CACHE_HOME:-$HOME/.cache}/libevents/venv (outside the repository).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
: "${HOME:=$(getent passwd "$(id -u)" | cut -d: -f6)}"
CACHE_DIR="${XDG_CACHE_HOME:-$HOME/.cache}/libevents"
VENV="$CACHE_DIR/venv"
PIN=check-jsonschema==0.39.0
SYS_PYTHON=/usr/bin/python3
[ -x "$SYS_PYTHON" ] || SYS_PYTHON=$(command -v python3)

installed_ok() {
  [ -x "$VENV/bin/check-jsonschema" ] &&
    [ "$("$VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("check-jsonschema"))' 2>/dev/null)" = "${PIN#*==}" ]
}

if ! installed_ok; then
  mkdir -p "$CACHE_DIR"
  exec 8>"$CACHE_DIR/.venv.lock"
  flock -w 600 8 || { echo "compose-check: timed out waiting for $CACHE_DIR/.venv.lock" >&2; exit 1; }
  if ! installed_ok; then
    echo "compose-check: installing $PIN into $VENV" >&2
    [ -x "$VENV/bin/python" ] || "$SYS_PYTHON" -m venv "$VENV"
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check "$PIN" ||
      { echo "compose-check: pip install $PIN failed (PyPI reachable?)" >&2; exit 1; }
  fi
  exec 8>&-
fi

cd "$root"
echo "== compose.yaml against the Compose Specification schema ($PIN, vendor.compose-spec)"
"$VENV/bin/check-jsonschema" --builtin-schema vendor.compose-spec compose.yaml

echo "== the validator rejects a broken file"
bad=$(mktemp -d)
trap 'rm -rf "$bad"' EXIT
cat >"$bad/compose.yaml" <<'EOF'
services:
  app:
    image: example
    depends_on:
      db:
        condition: when_it_feels_like_it
    ports: {http: 80}
EOF
if "$VENV/bin/check-jsonschema" --builtin-schema vendor.compose-spec "$bad/compose.yaml" >"$bad/out" 2>&1; then
  cat "$bad/out"
  echo "compose-check: the schema accepted a broken file; the validation checks nothing" >&2
  exit 1
fi
echo "ok -- rejected as expected"

echo "== the cross-check rejects a service whose program the Dockerfile does not build"
cat >"$bad/compose.yaml" <<'EOF'
services:
  refund-service:
    build: .
    command: ["refund-service"]
EOF
if "$VENV/bin/python" "$root/tests/stack/check_compose.py" --root "$root" \
  --compose "$bad/compose.yaml" >"$bad/out" 2>&1; then
  cat "$bad/out"
  echo "compose-check: the cross-check accepted a program that is never built" >&2
  exit 1
fi
echo "ok -- rejected as expected"

echo "== compose.yaml against the Dockerfile and the repository"
args=(--root "$root")
if [ -n "${1:-}" ]; then args+=(--binaries "$1"); fi
"$VENV/bin/python" "$root/tests/stack/check_compose.py" "${args[@]}"
