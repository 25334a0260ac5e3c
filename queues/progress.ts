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
  /**
   * A parallel task; `splitDone` false while split still runs: percent is then of the units known so
   * far, at most 99, and can go back as split adds units (97% of 100, then 91% of 110).
   */
  | { percent: number; workunits: WorkunitCounts; splitDone: boolean }
  /** A sequence: the step running now (0-based) and how many steps there are. */
  | { percent: number; step: { index: number; name: string }; steps: number };

/** Percent of a simple task's own progress value: a number, or an object's `percent` field. */
export function percentOf(value: number | Record<string, unknown>): number {
  const raw = typeof value === 'number' ? value : value.percent;
  return typeof raw === 'number' && Number.isFinite(raw) ? Math.min(100, Math.max(0, raw)) : 0;
}

/**
 * A progress in words, as `tydra status` and the TaskInstance page show it:
 * `42% · workunits 420/1000 done, 3 failed, 8 running`, `33% · step 2/3 (count)`, `42%`.
 */
export function describeProgress(p: TaskProgress): string {
  const percent = `${Math.floor(p.percent)}%`;
  if ('workunits' in p) {
    const { total, done, failed, running } = p.workunits;
    const splitting = p.splitDone ? '' : ' (split still running)';
    return `${percent} · workunits ${done}/${total} done, ${failed} failed, ${running} running${splitting}`;
  }
  if ('step' in p) {
    return `${percent} · step ${p.step.index + 1}/${p.steps} (${p.step.name})`;
  }
  const own = typeof p.value === 'object' ? ownFields(p.value) : '';
  return own ? `${percent} · ${own}` : percent;
}

/** What a simple task reported besides its percent, as compact JSON (cut to fit one line). */
function ownFields(value: Record<string, unknown>): string {
  const rest = Object.fromEntries(Object.entries(value).filter(([key]) => key !== 'percent'));
  if (Object.keys(rest).length === 0) {
    return '';
  }
  const text = JSON.stringify(rest);
  return text.length > 60 ? `${text.slice(0, 57)}...` : text;
}
