#!/usr/bin/env bash
# Runs docker-compose.yml for real with podman and podman-compose, reaching no container registry:
#
#   1. base images, built locally: a Debian bookworm rootfs from debootstrap imported as
#      localhost/debian:bookworm; on it, a Node 20 stand-in for node:20-bookworm-slim (the host's
#      node binary and npm: Debian 12 ships Node 18) and a redis:7 stand-in (Debian's redis-server);
#   2. tydra's image from ./Dockerfile (`--build-arg BASE_IMAGE=localhost/node:20-bookworm-slim`);
#   3. which container privileges bubblewrap needs: a throwaway node container per set of
#      privileges, from podman's defaults upward, each line saying whether the node started or
#      what bwrap answered;
#   4. the compose stack with 3 node replicas: every service's health check passes, `tydra nodes`
#      lists 3 distinct alive nodes (one per container), and TaskInstances of a probe package run
#      in bwrap sandboxes on them (scripts/compose-smoke/check.mjs checks uid, capabilities, pid
#      and UTS namespaces);
#   5. tears the stack down (containers, network and the Redis volume), also on failure.
#
# Needs root, podman, podman-compose and debootstrap (`apt-get install -y podman podman-compose
# debootstrap`), the network to reach a Debian mirror and the npm registry, and node 20 on the
# host. Not part of `npm test` or CI: it takes minutes. Usage:
#
#   scripts/compose-smoke.sh                    # images are reused when they exist
#   TYDRA_SMOKE_REBUILD=1 scripts/compose-smoke.sh   # rebuild every image
#
# Environment: TYDRA_SMOKE_DIR (work folder, default /var/tmp/tydra-compose-smoke),
# TYDRA_DEBIAN_MIRROR (default: the host's first apt source, else http://deb.debian.org/debian),
# TYDRA_SMOKE_NODES (default 3). Progress goes to stdout; compose's own output to
# $TYDRA_SMOKE_DIR/compose.log, with the dashboard password blanked.
set -euo pipefail

cd "$(dirname "$0")/.."
REPO=$PWD
WORK=${TYDRA_SMOKE_DIR:-/var/tmp/tydra-compose-smoke}
NODES=${TYDRA_SMOKE_NODES:-3}
PROJECT=tydra-smoke
NETWORK=${PROJECT}_default
DEBIAN_IMAGE=localhost/debian:bookworm
NODE_IMAGE=localhost/node:20-bookworm-slim
REDIS_IMAGE=localhost/redis:7
TYDRA_IMAGE=localhost/tydra:local
# A fresh password per run, hex so that it can be blanked from logs with a plain sed.
PASSWORD=$(od -An -tx1 -N16 /dev/urandom | tr -d ' \n')
export TYDRA_DASHBOARD_PASSWORD=$PASSWORD TYDRA_REDIS_IMAGE=$REDIS_IMAGE TYDRA_BASE_IMAGE=$NODE_IMAGE
export TYDRA_NODES=$NODES

step() { printf '\n== %s\n' "$*"; }
fail() {
  printf 'FAIL: %s\n' "$*" >&2
  exit 1
}
redact() { sed "s/$PASSWORD/***/g"; }
compose() { podman-compose -p "$PROJECT" -f docker-compose.yml "$@" 2>&1 | redact >>"$WORK/compose.log"; }
# A one-off container of tydra's image on the compose network, as `docker compose run` would start.
tydra_run() { podman run --rm --network "$NETWORK" -e TYDRA_REDIS_URL=redis://redis:6379 "$@"; }

[ "$(id -u)" -eq 0 ] || fail "run as root (rootful podman: bubblewrap in rootless podman is another setup)"
for tool in podman podman-compose debootstrap node; do
  command -v "$tool" >/dev/null || fail "$tool is not installed (apt-get install -y podman podman-compose debootstrap)"
done
[ "$(node -p 'process.versions.node.split(".")[0]')" = 20 ] || fail "the host's node must be Node 20, got $(node --version)"
mkdir -p "$WORK"
: >"$WORK/compose.log"

image_missing() { [ "${TYDRA_SMOKE_REBUILD:-}" = 1 ] || ! podman image exists "$1"; }

debian_mirror() {
  if [ -n "${TYDRA_DEBIAN_MIRROR:-}" ]; then
    echo "$TYDRA_DEBIAN_MIRROR"
    return
  fi
  local uri
  uri=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources 2>/dev/null |
    awk '/^URIs:/ && $2 !~ /security/ {print $2; exit} /^deb / && $2 !~ /security/ {print $2; exit}')
  echo "${uri:-http://deb.debian.org/debian}"
}

build_debian_image() {
  image_missing "$DEBIAN_IMAGE" || return 0
  local mirror rootfs=$WORK/rootfs
  mirror=$(debian_mirror)
  step "debootstrap --variant=minbase bookworm from $mirror"
  rm -rf "$rootfs"
  debootstrap --variant=minbase bookworm "$rootfs" "$mirror" >"$WORK/debootstrap.log" 2>&1 ||
    fail "debootstrap failed, see $WORK/debootstrap.log"
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
  tar -C "$rootfs" -c . | podman import --quiet --change 'CMD ["/bin/bash"]' - "$DEBIAN_IMAGE" >/dev/null
  rm -rf "$rootfs"
}

# Podman's defaults fail on some hosts: an RLIMIT_NOFILE of 1048576 that a caller without
# CAP_SYS_RESOURCE cannot set, or crun refusing a hybrid cgroup layout
# whose v2 half has controllers ("cgroups in hybrid mode not supported"). Then run everything
# with runc and the caller's own file limit, through a private containers.conf.
choose_engine_config() {
  unset CONTAINERS_CONF
  if podman run --rm "$DEBIAN_IMAGE" true 2>"$WORK/engine-probe.log"; then
    echo "podman's default settings work here"
    return
  fi
  echo "podman's defaults fail here: $(tail -1 "$WORK/engine-probe.log")"
  command -v runc >/dev/null || fail "install runc (apt-get install -y runc) or fix the error above"
  cat >"$WORK/containers.conf" <<EOF
[containers]
default_ulimits = ["nofile=$(ulimit -Hn):$(ulimit -Hn)", "nproc=32768:32768"]
[engine]
runtime = "runc"
EOF
  export CONTAINERS_CONF=$WORK/containers.conf
  podman run --rm "$DEBIAN_IMAGE" true || fail "podman cannot run a container with $WORK/containers.conf either"
  echo "using runc and nofile $(ulimit -Hn), nproc 32768 ($CONTAINERS_CONF)"
}

build_node_and_redis_images() {
  if image_missing "$NODE_IMAGE"; then
    step "build $NODE_IMAGE (the host's $(node --version) and npm on $DEBIAN_IMAGE)"
    local ctx=$WORK/node-context npm_dir
    rm -rf "$ctx" && mkdir -p "$ctx/extra-ca"
    cp "$(realpath "$(command -v node)")" "$ctx/node"
    npm_dir=$(dirname "$(dirname "$(realpath "$(command -v npm)")")")
    cp -a "$npm_dir" "$ctx/npm"
    # CAs the host added (a TLS-inspecting proxy's, for instance), so npm ci in the build trusts them.
    cp /usr/local/share/ca-certificates/*.crt "$ctx/extra-ca/" 2>/dev/null || true
    podman build -q -t "$NODE_IMAGE" -f scripts/compose-smoke/node20.Containerfile "$ctx" >/dev/null
    rm -rf "$ctx"
  fi
  if image_missing "$REDIS_IMAGE"; then
    step "build $REDIS_IMAGE (Debian's redis-server on $DEBIAN_IMAGE)"
    podman build -q -t "$REDIS_IMAGE" -f scripts/compose-smoke/redis7.Containerfile scripts/compose-smoke >/dev/null
  fi
}

build_tydra_image() {
  image_missing "$TYDRA_IMAGE" || return 0
  step "build $TYDRA_IMAGE from ./Dockerfile (log: $WORK/tydra-build.log)"
  podman build --build-arg "BASE_IMAGE=$NODE_IMAGE" -t "$TYDRA_IMAGE" . >"$WORK/tydra-build.log" 2>&1 ||
    fail "the image build failed, see $WORK/tydra-build.log"
}

cleanup() {
  local code=$?
  step "tear down"
  for name in $(podman ps -a --format '{{.Names}}' | grep '^tydra-smoke-priv-' || true); do
    podman rm -f -t 1 "$name" >/dev/null
  done
  compose down -v -t 5 || true
  podman network rm -f "$NETWORK" >/dev/null 2>&1 || true
  echo "removed the stack, its network and volume"
  if [ "$code" -eq 0 ]; then
    echo "compose-smoke: OK"
  else
    echo "compose-smoke: FAILED (exit $code); compose output in $WORK/compose.log"
  fi
}

# Waits until `podman healthcheck run` passes for the container: podman runs health checks from
# systemd timers, and a host without systemd (this script's VM) has none, so the script runs them.
wait_healthy() {
  local name=$1 i
  for i in $(seq 1 60); do
    if podman healthcheck run "$name" >/dev/null 2>&1; then
      echo "$name: healthy ($(podman inspect -f '{{.State.Health.Status}}' "$name"))"
      return 0
    fi
    sleep 2
  done
  podman logs --tail 5 "$name" 2>&1 | redact
  fail "$name did not become healthy within 120 s"
}

# One throwaway node container per set of privileges; prints whether the node started or what
# bwrap said. The compose file's set must start.
privilege_matrix() {
  step "which privileges bubblewrap needs in a node container (each: --cap-drop ALL, no-new-privileges, uid 1000)"
  local profile=$WORK/bwrap-seccomp.json
  # Podman's default seccomp profile, but sethostname allowed without CAP_SYS_ADMIN.
  node -e '
    const fs = require("fs");
    const p = JSON.parse(fs.readFileSync("/usr/share/containers/seccomp.json", "utf8"));
    for (const r of p.syscalls) {
      if (r.action === "SCMP_ACT_ERRNO" && (r.excludes?.caps ?? []).includes("CAP_SYS_ADMIN")) {
        r.names = r.names.filter((n) => n !== "sethostname");
      }
    }
    p.syscalls.push({ names: ["sethostname"], action: "SCMP_ACT_ALLOW", args: [] });
    fs.writeFileSync(process.argv[1], JSON.stringify(p));' "$profile"
  # Expected to fail here (each prints why), except the last two.
  try_privileges defaults || true
  try_privileges seccomp-unconfined --security-opt seccomp=unconfined || true
  try_privileges systempaths-unconfined --security-opt systempaths=unconfined || true
  try_privileges cap-add-sys-admin --cap-add SYS_ADMIN --security-opt systempaths=unconfined || true
  try_privileges seccomp-sethostname-systempaths --security-opt "seccomp=$profile" --security-opt systempaths=unconfined ||
    true
  try_privileges compose-file --security-opt seccomp=unconfined --security-opt apparmor=unconfined \
    --security-opt systempaths=unconfined || fail "a node with the compose file's privileges did not start"
}

try_privileges() {
  local label=$1 name=tydra-smoke-priv-$1 i line=''
  shift
  podman run -d --name "$name" --network "$NETWORK" -e TYDRA_REDIS_URL=redis://redis:6379 --init \
    --cap-drop ALL --security-opt no-new-privileges:true "$@" "$TYDRA_IMAGE" node --id "$name" >/dev/null
  for i in $(seq 1 30); do
    line=$(podman logs "$name" 2>&1 | grep -m1 -o -E '"msg":"node started"|tydra: bubblewrap.*' || true)
    [ -n "$line" ] && break
    sleep 1
  done
  podman rm -f -t 1 "$name" >/dev/null
  if [ "$line" = '"msg":"node started"' ]; then
    printf '  %-34s node started (%s)\n' "$label" "${*:-podman defaults}"
    return 0
  fi
  printf '  %-34s %s\n' "$label" "$(echo "${line:-no answer in 30 s}" | sed -E 's/.*\((bwrap: [^)]*)\).*/\1/')"
  return 1
}

build_debian_image
choose_engine_config
build_node_and_redis_images
build_tydra_image
trap cleanup EXIT

step "podman-compose up -d with $NODES node replicas (TYDRA_NODES; podman-compose 1.0.3 ignores --scale)"
compose up -d --no-build
for service in redis master dashboard; do
  wait_healthy "${PROJECT}_${service}_1"
done
mapfile -t node_containers < <(podman ps --filter "label=com.docker.compose.project=$PROJECT" \
  --filter label=com.docker.compose.service=node --format '{{.Names}}' | sort)
[ "${#node_containers[@]}" -eq "$NODES" ] || fail "expected $NODES node containers, got ${#node_containers[@]}"
for name in "${node_containers[@]}"; do
  wait_healthy "$name"
done

step "tydra nodes (from a one-off container of the image on the compose network)"
tydra_run "$TYDRA_IMAGE" nodes

step "privileges of a node container as podman sees them (${node_containers[0]})"
podman inspect -f 'user {{.Config.User}}, CapAdd {{.HostConfig.CapAdd}}, CapDrop {{.HostConfig.CapDrop}}, SecurityOpt {{.HostConfig.SecurityOpt}}, Privileged {{.HostConfig.Privileged}}, PidsLimit {{.HostConfig.PidsLimit}}' "${node_containers[0]}"
podman exec "${node_containers[0]}" grep -E '^(Uid|CapEff|CapBnd|NoNewPrivs|Seccomp):' /proc/1/status | tr '\n' ' '
echo

step "deploy the probe package and run TaskInstances on the nodes"
mapfile -t node_hosts < <(for name in "${node_containers[@]}"; do podman inspect -f '{{.Config.Hostname}}' "$name"; done)
tydra_run -v "$REPO/scripts/compose-smoke:/smoke:ro" --entrypoint node "$TYDRA_IMAGE" /smoke/check.mjs "${node_hosts[@]}"

step "a node's log line about its sandbox and cgroups (${node_containers[0]})"
podman logs "${node_containers[0]}" 2>&1 | grep -m2 -o -E '"reason":"[^"]*"|"sandbox":"[^"]*"' || true

privilege_matrix
