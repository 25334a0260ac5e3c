// Reports what a task sees of its sandbox, so compose-smoke.sh can check that it ran under
// bubblewrap inside a node container: its uid and the uid map of its user namespace as seen from
// inside, its capabilities, no_new_privs and seccomp mode, the pid it has in its own pid
// namespace, its hostname (its own UTS namespace) and its cgroups (as its own cgroup namespace
// shows them: `/`, or, where the node moved it into a TaskInstance cgroup, that cgroup's path
// from the node's).
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
