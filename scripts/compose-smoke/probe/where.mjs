// Reports what a task sees of its sandbox, so compose-smoke.sh can check that it ran under
// bubblewrap inside a node container: the uid map of its user namespace (the sandbox's uid
// 65534 is uid 1000, the image's `node` user, one level up), its capabilities and
// no_new_privs, the pid it has in its own pid namespace, and the cgroup it sits in (the
// container's, named after the container id by podman's cgroupfs manager).
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';

const read = (path) => {
  try {
    return readFileSync(path, 'utf8').trim();
  } catch (error) {
    return `unreadable: ${error.code}`;
  }
};
const status = Object.fromEntries(
  read('/proc/self/status')
    .split('\n')
    .map((line) => line.split(/:\s*/, 2)),
);

export default async function where(_input, ctx) {
  return {
    instanceId: ctx.instanceId,
    uid: process.getuid(),
    uidMap: read('/proc/self/uid_map').replace(/\s+/g, ' '),
    capEff: status.CapEff,
    noNewPrivs: status.NoNewPrivs,
    seccomp: status.Seccomp,
    pid: process.pid,
    hostname: hostname(),
    cgroup: read('/proc/self/cgroup').split('\n'),
  };
}
