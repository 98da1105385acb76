#!/usr/bin/env bash
# The schema evolution rule, checked against git history: every
# schemas/*.avsc of the working tree must be compatible in both directions
# with every version of it committed before (full transitive
# compatibility): services built with the new version read events written
# with any older one (backward), and services still on an older version
# read events written with the new one (forward). Compatibility is
# libevents' own check (lev_schema_check_resolvable, through
# `evctl schemas check --against`), the rules the services decode by.
#
# What that means for a schema change:
#   - add a field only with a default;
#   - remove a field only if it has a default (old readers fill it in);
#   - never rename a field or a type: aliases are not used, so a renamed
#     field is a removed plus an added one, and a top-level record whose full
#     name changes is a removed schema (nested records and enums match by
#     unqualified name, fixed types by full name);
#   - never change a field's type, not even by a promotion (int to long reads
#     old events, but old readers cannot read the new ones) or by widening a
#     union (a new branch, making a field nullable): old readers cannot read
#     the new branch; a field removed and added back keeps its old type;
#   - an enum may gain symbols only if the versions before it declare a
#     default symbol, and lose symbols only if the new version declares one
#     (declare one, like UNKNOWN, from the first version of an enum that may
#     grow); readers match symbols by name, but append new ones at the end;
#   - fixed types keep their name and size.
#
# The previous versions of a file are the versions at every commit of HEAD's
# history that changed it (renames followed), minus the working tree's own
# content: HEAD's version when the working tree differs from it, and every
# earlier one. A file without a committed version is new and passes.
#
# Usage: tests/schemas/check_evolution.sh --evctl PATH [--repo DIR] [--schemas SUBDIR]
#   --evctl PATH     the evctl binary (build/tools/evctl/evctl)
#   --repo DIR       the git work tree (default: this script's repository)
#   --schemas SUBDIR the schema directory inside it (default: schemas)
# Exit: 0 compatible; 1 incompatible (or a check could not run); 2 usage;
# 77 skipped: git, the repository or its full history is unavailable (a
# shallow clone), and nothing incompatible was found in what is there.
set -uo pipefail

SKIP=77
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
evctl=""
sub=schemas

usage() { awk '/^# Usage/ { on = 1 } on && !/^#/ { exit } on' "$0" | sed 's/^# \{0,1\}//'; }
while [ $# -gt 0 ]; do
  case "$1" in
    --evctl) [ $# -ge 2 ] || { usage >&2; exit 2; }; evctl=$2; shift 2 ;;
    --repo) [ $# -ge 2 ] || { usage >&2; exit 2; }; repo=$2; shift 2 ;;
    --schemas) [ $# -ge 2 ] || { usage >&2; exit 2; }; sub=$2; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "check_evolution: unknown argument: $1" >&2; usage >&2; exit 2 ;;
  esac
done
[ -n "$evctl" ] && [ -x "$evctl" ] ||
  { echo "check_evolution: --evctl: no evctl binary at '${evctl}'" >&2; exit 2; }
dir="$repo/$sub"
[ -d "$dir" ] || { echo "check_evolution: no schema directory $dir" >&2; exit 2; }

skip() {
  echo "SKIPPED: $*"
  echo "SKIPPED: the schema evolution rule was NOT checked"
  exit $SKIP
}

command -v git >/dev/null 2>&1 ||
  skip "git is not installed: the committed versions of $sub/ cannot be found"
if ! why=$(git -C "$dir" rev-parse --show-toplevel 2>&1); then
  skip "$dir is not in a usable git work tree: ${why//$'\n'/ }"
fi
top=$why
if ! git -C "$top" rev-parse --verify -q HEAD >/dev/null; then
  echo "check_evolution: $top has no commit yet: every schema is new"
fi
shallow=$(git -C "$top" rev-parse --is-shallow-repository 2>/dev/null || echo unknown)

tmp=$(mktemp -d "${TMPDIR:-/tmp}/check-evolution.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT

files=0 versions=0 bad=0 n=0
shopt -s nullglob
for f in "$dir"/*.avsc; do
  files=$((files + 1))
  rel=${f#"$top"/}
  cur_blob=$(git -C "$top" hash-object -- "$rel")
  # commit and path of every commit that changed the file, newest first
  declare -A seen=()
  checked=0 commit=""
  while IFS= read -r line; do
    [ -n "$line" ] || continue
    if [[ $line =~ ^[0-9a-f]{40}([0-9a-f]{24})?$ ]]; then
      commit=$line
      continue
    fi
    [ -n "$commit" ] || continue
    path=$line
    blob=$(git -C "$top" rev-parse -q --verify "$commit:$path" 2>/dev/null) || continue # deleted there
    [ "$blob" != "$cur_blob" ] || continue
    [ -z "${seen[$blob]:-}" ] || continue
    seen[$blob]=1
    n=$((n + 1))
    mkdir -p "$tmp/$n"
    git -C "$top" cat-file blob "$blob" >"$tmp/$n/$(basename "$path")" || {
      echo "FAIL $rel: cannot read $path at ${commit:0:12}"
      bad=$((bad + 1))
      continue
    }
    checked=$((checked + 1))
    versions=$((versions + 1))
    what="$path at ${commit:0:12} ($(git -C "$top" log -1 --format='%cs %s' "$commit" | cut -c1-60))"
    out=$("$evctl" schemas check --schemas "$dir" --against "$tmp/$n" 2>&1 >/dev/null)
    rc=$?
    if [ $rc = 0 ]; then
      echo "ok   $rel: compatible both ways with $what"
    else
      bad=$((bad + 1))
      if [ $rc = 65 ]; then
        echo "FAIL $rel: incompatible with $what:"
      else
        echo "FAIL $rel: evctl schemas check exited $rc against $what:"
      fi
      printf '%s\n' "$out" | grep -v 'schemas\? checked:' | sed 's/^/       /'
    fi
  done < <(git -C "$top" log --follow --format=%H --name-only -- "$rel" 2>/dev/null)
  unset seen
  if [ $checked = 0 ]; then
    if [ -z "$(git -C "$top" log -1 --format=%H -- "$rel" 2>/dev/null)" ]; then
      echo "new  $rel: no committed version"
    else
      echo "ok   $rel: no other committed version"
    fi
  fi
done

if [ $files = 0 ]; then
  echo "FAIL: no *.avsc in $dir"
  exit 1
fi
summary="$files schema files, $versions previous versions checked"
if [ $bad != 0 ]; then
  echo "check_evolution: $summary: $bad INCOMPATIBLE (the rule: full transitive compatibility)"
  exit 1
fi
if [ "$shallow" != false ]; then
  skip "$top is a shallow clone (is-shallow-repository: $shallow): older versions are missing;" \
    "$summary, all compatible (fetch the full history: git fetch --unshallow)"
fi
echo "check_evolution: $summary: all compatible both ways"
exit 0
