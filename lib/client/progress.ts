/**
 * A TaskInstance's progress as the client hands it out: always one of the shapes of
 * `queues/progress.ts`. Nodes write those shapes; a bare value (a number, or an object of the
 * task's own) written by an older node is read as a simple task's `{ percent, value }`.
 */
import { percentOf, type TaskProgress } from '../../queues/progress.js';

/** `raw` (a job's progress, or a `progress` event's data) as a {@link TaskProgress}; undefined if it is none. */
export function toTaskProgress(raw: unknown): TaskProgress | undefined {
  if (typeof raw === 'number') {
    return Number.isFinite(raw) ? { percent: percentOf(raw), value: raw } : undefined;
  }
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
    return undefined;
  }
  const fields = raw as Record<string, unknown>;
  if (typeof fields.percent === 'number' && ('value' in fields || 'workunits' in fields || 'step' in fields)) {
    return raw as TaskProgress;
  }
  return { percent: percentOf(fields), value: fields };
}

/**
 * The progress a job reports in `status()`: BullMQ gives every job a progress of 0 until one is
 * written, which says nothing, so that reads as none.
 */
export function reportedProgress(raw: unknown): TaskProgress | undefined {
  return raw === 0 ? undefined : toTaskProgress(raw);
}
