#!/usr/bin/env bash
# Installs the system packages tydra needs on Debian/Ubuntu: bubblewrap (the sandbox),
# util-linux's prlimit (per-task rlimits), redis-server (for `tydra dev` and the tests) and
# /usr/bin/python3 (the Python example and attack tests run it inside the sandbox, which sees
# only /usr: a python3 elsewhere on PATH, such as pyenv's, does not count) and chromium (the
# browser test drives it with playwright-core, which never downloads a browser). Does nothing
# when all are there.
set -euo pipefail

missing=()
command -v bwrap >/dev/null 2>&1 || missing+=(bubblewrap)
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v prlimit >/dev/null 2>&1 || [ -x /usr/bin/prlimit ] || missing+=(util-linux)
[ -x /usr/bin/python3 ] || missing+=(python3)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)

if [ ${#missing[@]} -eq 0 ]; then
  echo "setup: bubblewrap, prlimit, redis-server, /usr/bin/python3 and chromium are installed"
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
