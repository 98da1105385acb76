#!/usr/bin/env bash
# Proves that check_evolution.sh enforces the schema evolution rule: in
# throw-away git repositories built from tests/data/avro/compat/evolution/,
# a compatible change passes; an incompatible one fails, uncommitted or
# committed, naming the field and the reason; a change compatible with the
# previous version but not with an older one fails (the rule is
# transitive); history is followed through a rename; outside a git
# checkout and in a shallow clone the check is skipped (exit 77), never
# passed.
#
# Usage: tests/schemas/check_evolution_test.sh --evctl PATH [--fixtures DIR]
# Exit: 0 all cases as expected; 1 otherwise; 77 git is not installed.
set -uo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
script="$here/check_evolution.sh"
fixtures="$here/../data/avro/compat/evolution"
evctl=""
while [ $# -gt 0 ]; do
  case "$1" in
    --evctl) evctl=${2:-}; shift 2 ;;
    --fixtures) fixtures=${2:-}; shift 2 ;;
    *) echo "check_evolution_test: unknown argument: $1" >&2; exit 2 ;;
  esac
done
[ -x "$evctl" ] || { echo "check_evolution_test: --evctl PATH needed" >&2; exit 2; }
command -v git >/dev/null 2>&1 || { echo "SKIPPED: git is not installed"; exit 77; }
unset GIT_DIR GIT_WORK_TREE GIT_INDEX_FILE GIT_OBJECT_DIRECTORY GIT_CEILING_DIRECTORIES

tmp=$(mktemp -d "${TMPDIR:-/tmp}/check-evolution-test.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT
failures=0

# g REPO ARGS...: git in REPO with a fixed identity, whatever the user's config.
g() {
  local r=$1
  shift
  git -C "$r" -c user.name=test -c user.email=test@example.invalid -c commit.gpgsign=false \
    -c init.defaultBranch=main "$@"
}

new_repo() {
  mkdir -p "$1/schemas" && g "$1" init -q
}

# put REPO FILE FIXTURE: the fixture becomes schemas/FILE in the work tree.
put() { cp "$fixtures/$3" "$1/schemas/$2"; }

commit() { g "$1" add -A schemas && g "$1" commit -q -m "$2"; }

# expect NAME REPO EXIT PATTERN...: runs the check on REPO; the exit code
# must be EXIT and every PATTERN (fixed string) must be in the output.
expect() {
  local name=$1 repo=$2 want=$3
  shift 3
  local out rc ok=1
  out=$("$script" --evctl "$evctl" --repo "$repo" 2>&1)
  rc=$?
  [ "$rc" = "$want" ] || ok=0
  for p in "$@"; do
    grep -qF -- "$p" <<<"$out" || { ok=0; echo "   missing: $p"; }
  done
  if [ $ok = 1 ]; then
    echo "ok   $name"
  else
    echo "FAIL $name: exit $rc, expected $want; output:"
    sed 's/^/   | /' <<<"$out"
    failures=$((failures + 1))
  fi
}

# 1. one schema through compatible and incompatible changes
r="$tmp/order"
new_repo "$r"
put "$r" order.avsc v1.avsc
expect "a schema never committed is new and passes" "$r" 0 "new  schemas/order.avsc"
commit "$r" "v1"
expect "an unchanged schema passes" "$r" 0 "ok   schemas/order.avsc: no other committed version"
put "$r" order.avsc v2_compatible.avsc
expect "an uncommitted compatible change passes" "$r" 0 \
  "ok   schemas/order.avsc: compatible both ways with schemas/order.avsc at"
put "$r" order.avsc v3_incompatible.avsc
expect "an uncommitted incompatible change fails, naming field and reason" "$r" 1 \
  "FAIL schemas/order.avsc: incompatible with schemas/order.avsc at" \
  "forward: items[].quantity: long cannot be read as int" \
  "backward: coupon: field coupon is missing in the writer and has no default" \
  "INCOMPATIBLE"
put "$r" order.avsc v2_compatible.avsc
commit "$r" "v2"
put "$r" order.avsc v3_incompatible.avsc
commit "$r" "v3"
expect "a committed incompatible change fails against the versions before it" "$r" 1 \
  "incompatible with schemas/order.avsc at" "v2)" "v1)" "2 previous versions checked: 2 INCOMPATIBLE"

# 2. transitivity: t3 is compatible with t2, not with t1
r="$tmp/note"
new_repo "$r"
put "$r" note.avsc t1.avsc
commit "$r" "t1"
put "$r" note.avsc t2.avsc
commit "$r" "t2"
put "$r" note.avsc t3.avsc
expect "a change compatible with the previous version but not an older one fails" "$r" 1 \
  "ok   schemas/note.avsc: compatible both ways with schemas/note.avsc at" \
  "FAIL schemas/note.avsc: incompatible with schemas/note.avsc at" \
  "note: string cannot be read as int" "t1)"

# 3. history followed through a rename
r="$tmp/renamed"
new_repo "$r"
put "$r" a.avsc v1.avsc
commit "$r" "as a"
g "$r" mv schemas/a.avsc schemas/b.avsc
sed -i 's/first version\./first version, renamed./' "$r/schemas/b.avsc" # similar: a rename to git
commit "$r" "renamed to b and changed"
put "$r" b.avsc v3_incompatible.avsc
expect "the versions of a renamed file are checked" "$r" 1 \
  "FAIL schemas/b.avsc: incompatible with schemas/a.avsc at"

# 4. no git history: skipped, never passed
mkdir -p "$tmp/plain/schemas"
cp "$fixtures/v1.avsc" "$tmp/plain/schemas/order.avsc"
expect "outside a git checkout the check is skipped" "$tmp/plain" 77 \
  "SKIPPED:" "not in a usable git work tree" "was NOT checked"
git clone -q --depth 1 "file://$tmp/order" "$tmp/shallow" 2>/dev/null
expect "in a shallow clone the check is skipped" "$tmp/shallow" 77 "SKIPPED:" "shallow clone"
cp "$fixtures/v1.avsc" "$tmp/shallow/schemas/order.avsc"
expect "in a shallow clone an incompatible change still fails" "$tmp/shallow" 1 \
  "items[].quantity: long cannot be read as int"

if [ $failures != 0 ]; then
  echo "check_evolution_test: $failures case(s) FAILED"
  exit 1
fi
echo "check_evolution_test: every case as expected"
