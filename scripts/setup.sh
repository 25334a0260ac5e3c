#!/usr/bin/env bash
# Installs the system packages tydra needs on Debian/Ubuntu: bubblewrap (the sandbox) and
# redis-server (for `tydra dev` and the tests). Does nothing when both are already there.
set -euo pipefail

missing=()
command -v bwrap >/dev/null 2>&1 || missing+=(bubblewrap)
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
if ! command -v python3 >/dev/null 2>&1 && [ ! -x /usr/bin/python3 ]; then
  missing+=(python3) # the example command task is written in Python
fi

if [ ${#missing[@]} -eq 0 ]; then
  echo "setup: bubblewrap and redis-server are installed"
  exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
  echo "setup: missing ${missing[*]}; install with: sudo apt-get install -y ${missing[*]}" >&2
  exit 1
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "setup: missing ${missing[*]} and apt-get is not available; install them with your package manager" >&2
  exit 1
fi

echo "setup: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# Debian's redis-server package starts a service on 6379; tydra never uses it (tests and
# `tydra dev` start their own server on a free port), so it is left as the package set it up.
echo "setup: installed ${missing[*]}"
