/** What the master counts (see `lib/core/metrics.ts`): TaskInstances by final state. */
import { recordedEnding } from '../../queues/task-ending.js';
import type { TydraMetrics } from '../core/metrics.js';
import type { TaskInstanceJob } from './settle.js';

/**
 * Counts a TaskInstance the master's Worker completed or failed (a `tasks` job has one attempt:
 * its failure is final). A failed one counts under the ending recorded on it (`cancelled`,
 * `timeout`, …), or `failed` when none was (BullMQ failed it itself, or a step threw).
 */
export function countFinal(metrics: TydraMetrics, job: TaskInstanceJob | undefined, completed: boolean): void {
  if (job === undefined) {
    return;
  }
  const data: Partial<TaskInstanceJob['data']> = typeof job.data === 'object' && job.data !== null ? job.data : {};
  const state = completed ? 'completed' : (recordedEnding(data)?.kind ?? 'failed');
  metrics.taskInstances.inc({
    package: typeof data.package?.name === 'string' ? data.package.name : 'unknown',
    task: typeof data.task === 'string' ? data.task : 'unknown',
    state,
  });
}
