/**
 * A stand-in node for process-group.test.ts. The test starts it detached, so it leads a process
 * group of its own, and sends SIGINT to that group, as a terminal's Ctrl-C does to a foreground
 * node, without ever signalling the test's own group. Like a draining node it survives SIGINT.
 *
 * argv: packageDir runtimeDir instanceId. Prints `bwrap <pid>` once the task runs, `sigint` when
 * the signal arrives, and at the end `result <json>` or `error <message>`.
 */
import { DEFAULT_TASK_LIMITS } from '../../../lib/core/limits.js';
import { checkBwrap } from '../../../sandbox/launcher/bwrap.js';
import { childPids } from '../../../sandbox/launcher/cgroup/process-tree.js';
import { findPrlimit } from '../../../sandbox/launcher/rlimits.js';
import { runTask } from '../../../sandbox/launcher/run-task.js';

const [packageDir = '', runtimeDir = '', instanceId = ''] = process.argv.slice(2);
process.on('SIGINT', () => process.stdout.write('sigint\n'));

const onLog = (line: string): void => {
  if (line === '[stdout] running') {
    // The harness's one child is prlimit, which became bwrap (exec, same pid).
    process.stdout.write(`bwrap ${childPids(process.pid).join(' ')}\n`);
  }
};
runTask({
  packageDir,
  runtimeDir,
  instanceId,
  task: { module: 'wait-for-go.mjs' },
  input: null,
  attempt: 1,
  limits: { ...DEFAULT_TASK_LIMITS, timeoutMs: 30_000 },
  bwrap: await checkBwrap(),
  prlimit: findPrlimit(),
  sandboxUser: process.getuid?.() === 0 ? { uid: 65534, gid: 65534 } : undefined,
  onLog,
}).then(
  (result) => process.stdout.write(`result ${JSON.stringify(result)}\n`),
  (error: unknown) => process.stdout.write(`error ${(error as Error).message}\n`),
);
