#!/bin/sh
# Entry point of the locally built redis:7 stand-in (see redis7.Containerfile).
set -e
if [ "$1" = redis-server ]; then
  set -- "$@" --protected-mode no
fi
exec "$@"
