/**
 * The shape of a TaskInstance's progress (BullMQ job progress on `tasks`), whatever its kind:
 * always an object with a `percent` from 0 to 100, so a client, the CLI and the dashboard read
 * every TaskInstance the same way.
 */

/** Counts of a parallel TaskInstance's workunits. `total` grows while split runs. */
export interface WorkunitCounts {
  total: number;
  done: number;
  failed: number;
  running: number;
}

export type TaskProgress =
  /** A simple task: `value` is what the task reported with `ctx.progress` (a number or an object). */
  | { percent: number; value: number | Record<string, unknown> }
  /** A parallel task; `splitDone` false while split still runs (percent is then a lower bound). */
  | { percent: number; workunits: WorkunitCounts; splitDone: boolean }
  /** A sequence: the step running now (0-based) and how many steps there are. */
  | { percent: number; step: { index: number; name: string }; steps: number };

/** Percent of a simple task's own progress value: a number, or an object's `percent` field. */
export function percentOf(value: number | Record<string, unknown>): number {
  const raw = typeof value === 'number' ? value : value.percent;
  return typeof raw === 'number' && Number.isFinite(raw) ? Math.min(100, Math.max(0, raw)) : 0;
}
