# The checks of the stack's test scripts: source this file (bash), then
#
#   ok TEXT / fail TEXT          count and print a passed or failed check
#   expect DESCRIPTION CMD...    ok when CMD succeeds, else fail
#   timed NAME OUT CMD...        run CMD (its output to the file OUT, - for
#                                none), print its duration, return its status
#
# $passes and $fails hold the counts.

fails=0
passes=0
ok() { echo "ok:   $*"; passes=$((passes + 1)); }
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
expect() { # expect DESCRIPTION COMMAND...
  local what=$1
  shift
  if "$@"; then ok "$what"; else fail "$what"; fi
}
timed() { # timed NAME OUT COMMAND...
  local name=$1 out=$2 t0=$SECONDS rc=0
  shift 2
  if [ "$out" = - ]; then "$@" || rc=$?; else "$@" >"$out" 2>&1 || rc=$?; fi
  echo "   $name: $((SECONDS - t0)) s (exit $rc)"
  return $rc
}
