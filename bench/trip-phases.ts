/**
 * Splits what MONITOR saw while TaskInstances ran one after the other into the steps of a
 * TaskInstance (`bench/round-trips.ts`):
 *
 * - **submit**: the client's commands while `submit()` was under way;
 * - **result**: the client's commands after it (`result()`: QueueEvents' XREADs, the finished check);
 * - **dispatch**: the master's commands until the node finishes the node job;
 * - **node start**: the node's commands until it finishes the node job (take it, resolve, start);
 * - **node finish**: the node's `moveToFinished` and what it sends after it;
 * - **settle**: the master's commands after the node finished (settle, complete, release).
 *
 * Which process sent a command is known by its connection (`roles`: address → role, from CLIENT
 * LIST snapshots as each role started); a command run inside a script belongs to the EVALSHA
 * before it. Background activity (blocking pops timing out, heartbeats) is counted in the step it
 * falls into: about one command per TaskInstance in all (see the idle figures).
 *
 * Round trips per step are estimated from the stream: a client's commands that reach Redis back to
 * back (no other client's command in between, less than `BURST_US` apart) came in one read, as a
 * pipeline or a MULTI does. The estimate is printed next to Redis's own count of reads.
 */

/** One line of MONITOR: server time in µs, source (`ip:port` or `lua`) and the command. */
export interface MonitorLine {
  us: number;
  source: string;
  args: readonly string[];
}

export type Role = 'client' | 'master' | 'node' | 'other';

export const PHASES = ['submit', 'dispatch', 'node start', 'node finish', 'settle', 'result', 'other'] as const;
export type Phase = (typeof PHASES)[number];

export interface PhaseCounts {
  commands: number;
  sent: number;
  roundTrips: number;
  /** Commands sent, by name and key shape (`evalsha moveToActive bull:tasks:wait`). */
  detail: Map<string, number>;
}

const BURST_US = 40;

/** Whether a client-sent command is the node finishing its node job (its moveToFinished). */
export type IsNodeFinish = (args: readonly string[]) => boolean;

/**
 * Counts per step. `submits` are the `[start, end]` µs windows of each `submit()` call, in order;
 * the step machine restarts at each one.
 */
export function countPhases(
  lines: readonly MonitorLine[],
  roles: ReadonlyMap<string, Role>,
  submits: ReadonlyArray<readonly [number, number]>,
  isNodeFinish: IsNodeFinish,
  describe: (args: readonly string[]) => string,
): Map<Phase, PhaseCounts> {
  const counts = new Map<Phase, PhaseCounts>(
    PHASES.map((phase) => [phase, { commands: 0, sent: 0, roundTrips: 0, detail: new Map() }]),
  );
  let nextSubmit = 0;
  let nodeFinished = false;
  let current: Phase = 'other';
  let last: { source: string; us: number } | undefined;
  for (const line of lines) {
    while (nextSubmit < submits.length && line.us >= (submits[nextSubmit]?.[0] ?? Infinity)) {
      nextSubmit += 1;
      nodeFinished = false;
    }
    if (line.source !== 'lua') {
      const role = roles.get(line.source) ?? 'other';
      const inSubmit = nextSubmit > 0 && line.us <= (submits[nextSubmit - 1]?.[1] ?? 0);
      if (role === 'node' && isNodeFinish(line.args)) {
        nodeFinished = true;
      }
      current = phaseOf(role, inSubmit, nodeFinished);
      const entry = counts.get(current);
      if (entry !== undefined) {
        entry.sent += 1;
        const key = describe(line.args);
        entry.detail.set(key, (entry.detail.get(key) ?? 0) + 1);
        if (last === undefined || last.source !== line.source || line.us - last.us > BURST_US) {
          entry.roundTrips += 1;
        }
      }
      last = { source: line.source, us: line.us };
    }
    const entry = counts.get(current);
    if (entry !== undefined) {
      entry.commands += 1;
    }
    if (line.source === 'lua' && last !== undefined) {
      // A pipeline's next command comes once the script before it is done.
      last.us = line.us;
    }
  }
  return counts;
}

function phaseOf(role: Role, inSubmit: boolean, nodeFinished: boolean): Phase {
  switch (role) {
    case 'client':
      return inSubmit ? 'submit' : 'result';
    case 'master':
      return nodeFinished ? 'settle' : 'dispatch';
    case 'node':
      return nodeFinished ? 'node finish' : 'node start';
    default:
      return 'other';
  }
}
