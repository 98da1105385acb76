# Ports for servers a test script starts: source this file (bash), then
#
#   lev_reserve_ports VAR [COUNT]
#
# sets VAR to the first of COUNT (default 1) consecutive TCP ports of
# 127.0.0.1 that nothing is bound to and no other test holds, and keeps
# them reserved until the script exits. The same scheme as
# lev_test_reserve_ports in tests/testutil.c, so C tests and scripts never
# pick the same port:
#   - below the kernel's ephemeral range (/proc/sys/net/ipv4/ip_local_port_range:
#     from 20000 up to its start, at most 29999; above its end when it starts
#     too low), where no outgoing connection takes a port behind our back;
#   - each port locked (flock) in /tmp/lev-test-ports/<port>.lock, or
#     $LEV_TEST_PORT_LOCKS/<port>.lock; a locked or bound port is skipped.
# The lock descriptors are inherited by the processes the script starts,
# so a server it leaves running keeps its port reserved too.
#
# A process that binds a port by number can still take it before our
# server does: check the server's start for "already in use" and start it
# again on ports reserved anew (lev_port_taken helps).

LEV_PORT_LOCK_FDS=()

# Sets LEV_PORT_LO and LEV_PORT_HI (exclusive).
lev_port_range() {
  local start=32768 end=60999 range
  if range=$(cat /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null); then
    read -r start end <<<"$range"
  fi
  LEV_PORT_LO=20000
  LEV_PORT_HI=$((start < 30000 ? start : 30000))
  if ((LEV_PORT_HI - LEV_PORT_LO < 1000)); then
    LEV_PORT_LO=$((end + 1))
    LEV_PORT_HI=$((end + 10001 < 65536 ? end + 10001 : 65536))
  fi
  if ((LEV_PORT_HI - LEV_PORT_LO < 1000)); then
    echo "ports.sh: no room for test ports outside the ephemeral range $start-$end" >&2
    return 1
  fi
}

# Exit status 0 when every port given can be bound on 127.0.0.1 (without
# SO_REUSEADDR: a port with connections still closing counts as taken).
lev_ports_free() {
  "${PYTHON:-python3}" - "$@" <<'EOF'
import socket, sys
for p in sys.argv[1:]:
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", int(p)))
    except OSError:
        sys.exit(1)
    finally:
        s.close()
EOF
}

lev_reserve_ports() { # lev_reserve_ports VAR [COUNT]
  local var=$1 count=${2:-1} dir=${LEV_TEST_PORT_LOCKS:-/tmp/lev-test-ports}
  local span i k p ok fd fds ports
  lev_port_range || return 1
  if [ ! -d "$dir" ]; then
    mkdir -p "$dir" 2>/dev/null && chmod 1777 "$dir" 2>/dev/null
  fi
  span=$((LEV_PORT_HI - LEV_PORT_LO - count + 1))
  local r=$(((RANDOM << 15 | RANDOM) % span))
  for ((i = 0; i < span; i++)); do
    p=$((LEV_PORT_LO + (r + i) % span))
    ok=1
    fds=()
    ports=()
    for ((k = 0; k < count; k++)); do
      ports+=($((p + k)))
      if ! { exec {fd}>>"$dir/$((p + k)).lock"; } 2>/dev/null; then
        continue # no lock file possible: go by the bind check alone
      fi
      fds+=("$fd")
      if ! flock -n "$fd"; then
        ok=0
        break
      fi
    done
    if ((ok)) && lev_ports_free "${ports[@]}"; then
      LEV_PORT_LOCK_FDS+=("${fds[@]}")
      printf -v "$var" '%s' "$p"
      return 0
    fi
    for fd in "${fds[@]}"; do
      exec {fd}>&-
    done
  done
  echo "ports.sh: no $count free port(s) in $LEV_PORT_LO-$((LEV_PORT_HI - 1))" >&2
  return 1
}

# Exit status 0 when one of the files says a port was already in use (the
# words of tools/kafka, tools/redis, tools/stack, Java, Python and Redis).
lev_port_taken() {
  grep -qiE 'already in use|Address in use|EADDRINUSE' "$@" 2>/dev/null
}
