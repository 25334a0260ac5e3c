/**
 * One Bull Board adapter per tydra queue and role, with what the board may do on it:
 *  - `tasks`: the TaskInstances; the buttons admins get act on them.
 *  - `node.<id>`: read-only. A node job is half of a TaskInstance: retried, duplicated, edited or
 *    added by hand it runs without a package reference and strands its TaskInstance. Pause and
 *    resume are answered before the board (`node-pause.ts`): they drain the node and undo it.
 *  - `workunits`: read-only: batches of parallel TaskInstances' workunits, run by every node.
 *  - `schedules`: read-only: the firings of schedules (`tydra schedule`), each making a TaskInstance.
 *  - `maintenance`: read-only (its prune runs from the masters' scheduler).
 * A read-only user gets `readOnlyMode` on every queue. Cards read `hello@8531753/greet · dev-2`,
 * data times are ISO, object progress gets the percent ring, and a TaskInstance and its node job link to each other
 * (one not dispatched links to its TaskInstance page).
 */
import { BullMQAdapter } from '@bull-board/api/bullMQAdapter';
import type { ExternalJobUrl, QueueJobJson } from '@bull-board/api/dist/types.js';
import type { Queue } from 'bullmq';

import { MAINTENANCE_QUEUE } from '../../queues/maintenance.js';
import { nodeQueueName } from '../../queues/node.js';
import { SCHEDULES_QUEUE } from '../../queues/schedules.js';
import { TASKS_QUEUE } from '../../queues/tasks.js';
import { SECRETS_WORKUNITS_QUEUE, WORKUNITS_QUEUE, WORKUNITS_QUEUES } from '../../queues/workunits.js';
import type { DashboardRole } from './dashboard-options.js';
import { jobTitle, readableData, readableProgress } from './job-display.js';
import { nodeIdOfQueue } from './queue-names.js';
import { TYDRA_PAGES_PATH } from './tydra-pages-path.js';

const TASKS_DESCRIPTION =
  'TaskInstances, one job each (job id = TaskInstance id). A running TaskInstance waits in ' +
  "waiting-children while its node job is active in its node's queue: the link on the card opens it. " +
  'Cancel a running one with `tydra cancel ID`, or on its page /tydra/instances/ID (Nodes and Packages: header menu).';

const MAINTENANCE_DESCRIPTION =
  'Housekeeping the masters run: the package prune (scheduler prune-packages). Read-only.';

const READ_ONLY_QUEUES: ReadonlyMap<string, string> = new Map([
  [
    WORKUNITS_QUEUE,
    "Batches of parallel TaskInstances' workunits (job id <TaskInstance id>.b<first unit>), pulled by every node with a free slot. Read-only: cancel the TaskInstance instead.",
  ],
  [
    SECRETS_WORKUNITS_QUEUE,
    'Batches of workunits of parallel TaskInstances that need secrets, pulled only by nodes holding a secret key (Nodes: secret key yes). Read-only: cancel the TaskInstance instead.',
  ],
  [
    SCHEDULES_QUEUE,
    'Firings of schedules (`tydra schedule add`): each job made one TaskInstance, named in its result. Read-only: manage schedules with `tydra schedule`.',
  ],
  [MAINTENANCE_QUEUE, MAINTENANCE_DESCRIPTION],
]);

const nodeDescription = (nodeId: string): string =>
  `Runs of node ${nodeId}: the node half of each TaskInstance, with the same job id as in tasks. ` +
  'Active here while its TaskInstance waits in waiting-children. Read-only: act on the TaskInstance in tasks. ' +
  'Pause drains the node (no new work; what waits here moves to other nodes; what runs finishes), resume undoes it.';

function jobIdOf(job: QueueJobJson): string | undefined {
  return job.id === undefined || job.id === null ? undefined : String(job.id);
}

/** The other half of a TaskInstance: its node job (from `tasks`), or its TaskInstance (from a node queue). */
function linkedJob(queueName: string, job: QueueJobJson): ExternalJobUrl | undefined {
  const id = jobIdOf(job);
  if (id === undefined) {
    return undefined;
  }
  if (nodeIdOfQueue(queueName) !== undefined) {
    return { displayText: 'its TaskInstance in tasks', href: `/queue/${TASKS_QUEUE}/${encodeURIComponent(id)}` };
  }
  if (queueName !== TASKS_QUEUE) {
    return undefined;
  }
  const data = job.data as { dispatch?: { nodeId?: unknown } } | undefined;
  const nodeId = data?.dispatch?.nodeId;
  if (typeof nodeId !== 'string' || nodeId === '') {
    // Not dispatched (queued, delayed, a sequence): its page on the tydra pages instead.
    return { displayText: 'its TaskInstance page', href: `${TYDRA_PAGES_PATH}/instances/${encodeURIComponent(id)}` };
  }
  const queue = nodeQueueName(nodeId);
  return { displayText: `its run in ${queue}`, href: `/queue/${encodeURIComponent(queue)}/${encodeURIComponent(id)}` };
}

/** Whether a queue is read-only for everyone, and what the board says about it. */
function queuePolicy(queueName: string): { readOnly: boolean; description: string } {
  const nodeId = nodeIdOfQueue(queueName);
  if (nodeId !== undefined) {
    return { readOnly: true, description: nodeDescription(nodeId) };
  }
  const description = READ_ONLY_QUEUES.get(queueName);
  if (description !== undefined) {
    return { readOnly: true, description };
  }
  return { readOnly: false, description: queueName === TASKS_QUEUE ? TASKS_DESCRIPTION : '' };
}

/** The adapter of `queue` on the board of `role`. */
export function boardAdapter(queue: Queue, role: DashboardRole): BullMQAdapter {
  const name = queue.name;
  const policy = queuePolicy(name);
  const adapter = new BullMQAdapter(queue, {
    delimiter: '.',
    readOnlyMode: role === 'read-only' || policy.readOnly,
    description: policy.description,
    // Bull Board's type wants a link for every job; a job with no other half has none to give.
    externalJobUrl: ((job: QueueJobJson) => linkedJob(name, job)) as (job: QueueJobJson) => ExternalJobUrl,
  });
  adapter.setFormatter('name', (job: { name?: string; data?: unknown }) => jobTitle(name, job));
  adapter.setFormatter('data', readableData);
  adapter.setFormatter('progress', readableProgress);
  return adapter;
}

/** The board's queue order: `tasks` first, then the nodes by id, then the workunits queues, `schedules`, `maintenance`. */
export function boardQueueNames(nodeIds: string[]): string[] {
  return [
    TASKS_QUEUE,
    ...[...nodeIds].sort().map(nodeQueueName),
    ...WORKUNITS_QUEUES,
    SCHEDULES_QUEUE,
    MAINTENANCE_QUEUE,
  ];
}
