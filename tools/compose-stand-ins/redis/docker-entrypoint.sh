#!/bin/sh
# As the official image: redis-server runs as the redis user, owns /data,
# and has protected mode off (compiled so there; given here).
set -e
if [ "${1:-}" = redis-server ] || [ "${1#-}" != "${1:-}" ]; then
  [ "${1:-}" = redis-server ] && shift
  if [ "$(id -u)" = 0 ]; then
    find /data \! -user redis -exec chown redis '{}' +
    exec setpriv --reuid=redis --regid=redis --init-groups redis-server "$@" --protected-mode no
  fi
  exec redis-server "$@" --protected-mode no
fi
exec "$@"
