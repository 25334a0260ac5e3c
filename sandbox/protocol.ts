/**
 * The node ↔ runner protocol. The runner is the only code tydra puts inside a sandbox for a
 * JavaScript task. Messages are newline-delimited JSON: the node writes to the runner's stdin,
 * the runner writes to file descriptor 3. The task's own stdout and stderr stay free for
 * `console.log`, and nothing the task prints can be mistaken for a protocol message.
 *
 * This file has no imports: it is loaded inside the sandbox, where only Node's standard library
 * exists, and it must start as fast as bare `node`.
 */

/**
 * The `name` of an error that must not be retried: what `ctx.fail(message)` throws, and what a
 * task's own error class may set (`class Bad extends Error { name = 'TydraUnrecoverable' }`).
 */
export const UNRECOVERABLE_ERROR_NAME = 'TydraUnrecoverable';

/**
 * Largest `ctx.progress` value, in bytes of JSON. A progress value is a status to show (a
 * percent, a few counts, a short message), yet the node writes each one to two jobs and BullMQ
 * copies it into two events streams of about 10,000 entries each: without a cap of its own a
 * value could be as large as a result message (16 MiB). 64 KiB is far more than a status needs
 * and bounds what one write costs Redis; how many are written is bounded by their rate
 * ({@link PROGRESS_SEND_MS}, and the node's coalesced writes), not by the output limit.
 */
export const MAX_PROGRESS_BYTES = 65_536;

/**
 * The bytes of a progress value in its message line, `{"type":"progress","value":…}`: the line's
 * less the message around the value. Both sides measure the line as it crosses fd 3, so the node
 * never encodes a value again to measure it (a hostile value nested deep enough to parse can
 * still be too deep to encode: `JSON.stringify` throws).
 */
export function progressValueBytes(line: string): number {
  return Buffer.byteLength(line.trimEnd()) - PROGRESS_ENVELOPE_BYTES;
}
const PROGRESS_ENVELOPE_BYTES = '{"type":"progress","value":}'.length;

/**
 * Shortest time between two progress messages of one runner: `ctx.progress` sends a value at
 * once when the last one went out at least this long ago, else keeps only the latest and sends it
 * when the period is over, or before the runner's final message (`runner/progress-coalescer.ts`).
 * A task may report per item of a long loop; the node parses each message on its main thread, and
 * takes more than 10 a second only from a runner that bypasses this (`launcher/stream-capture.ts`).
 */
export const PROGRESS_SEND_MS = 100;

/** The runner's protocol file descriptor. */
export const RUNNER_FD = 3;

/**
 * tydra's own empty ES module, next to the runner (`launcher/runtime-dir.ts` writes it): a pooled
 * runner whose task is an ES module requires it while it waits for its claim, so that Node's ES
 * module loader is loaded before the task is (`runner/task-module.ts`, `warmUpLoader`).
 */
export const LOADER_WARMUP_FILE = 'loader-warmup.mjs';

/** What a runner process does: one task (the default), or one phase of a parallel task. */
export type RunnerMode = 'task' | 'split' | 'work' | 'reduce';

/** A work unit that failed for good, as reduce sees it in `ctx.failures`. */
export interface UnitFailure {
  index: number;
  message: string;
}

/**
 * After its final message (`result` or `error`) a runner sends nothing more and exits once the
 * node half-closes its end of fd 3 (`launcher/exit-hold.ts`).
 *
 * Node → runner. A runner gets one `start`, then, by mode:
 * - task: nothing more but a possible `cancel`;
 * - split: `credit` messages: it sends one `unit` per credit and stops pulling from the split's
 *   iterator at zero credit (backpressure), then its `result` (the number of units);
 * - work: `unit` messages, handled one at a time, each answered by `unit-result` or `unit-error`;
 *   `end` (or the end of stdin) makes it exit 0. It never sends `result`;
 * - reduce: `item` per work result in split order, then `items-end`; then its `result`.
 */
export type NodeMessage =
  | {
      type: 'start';
      instanceId: string;
      attempt: number;
      /** Package-relative path of the task module. */
      module: string;
      input: unknown;
      /** @defaultValue 'task' */
      mode?: RunnerMode;
      /** reduce only: the units that failed for good (their results are `null`). */
      failures?: UnitFailure[];
      /**
       * Secret values by name, set in `process.env` before the task module is imported: they
       * travel on stdin, never on a command line.
       */
      env?: Record<string, string>;
    }
  | { type: 'cancel'; reason: string }
  | { type: 'credit'; count: number }
  | { type: 'unit'; index: number; attempt: number; value: unknown }
  | { type: 'item'; value: unknown }
  | { type: 'items-end' }
  | { type: 'end' };

/** Runner → node. */
export type RunnerMessage =
  /** A pooled runner (`TYDRA_WARM=1`, see `launcher/warm-sandbox.ts`): loaded, waiting for `start`. */
  | { type: 'ready' }
  /**
   * Every runner, once it read `start` and before the task's module is loaded: no task code has
   * run before it, so it proves to the node that the sandbox was set up (see `outcome.ts`).
   */
  | { type: 'started' }
  | { type: 'progress'; value: number | Record<string, unknown> }
  | { type: 'log'; line: string }
  | { type: 'result'; value: unknown }
  | { type: 'error'; name: string; message: string; stack?: string }
  /** split: one work unit (costs one credit). */
  | { type: 'unit'; value: unknown }
  /** work: the result of the unit `index`. */
  | { type: 'unit-result'; index: number; value: unknown }
  /** work: the unit `index` threw; the runner goes on serving. */
  | { type: 'unit-error'; index: number; name: string; message: string; stack?: string };

export function encodeMessage(message: NodeMessage | RunnerMessage): string {
  return `${JSON.stringify(message)}\n`;
}

/**
 * Splits a text stream into lines; refuses lines longer than `maxLineBytes`. Only each new chunk
 * is searched for a newline and the pieces of a pending line are joined once, when it ends: a
 * result line of many megabytes arriving in 64 KiB chunks must not be re-scanned and re-copied
 * per chunk (that made a 16 MiB line cost seconds and hundreds of megabytes on the node).
 */
export class LineSplitter {
  private pieces: string[] = [];
  private pending = 0;

  constructor(
    private readonly maxLineBytes: number,
    private readonly onLine: (line: string) => void,
  ) {}

  /**
   * Returns false while the unterminated line is longer than the limit; the caller then stops
   * pushing (the pending text stays bounded) or calls `flush()` to take it as it is.
   */
  push(chunk: string): boolean {
    let start = 0;
    let newline = chunk.indexOf('\n');
    while (newline !== -1) {
      this.pieces.push(chunk.slice(start, newline));
      this.emit();
      start = newline + 1;
      newline = chunk.indexOf('\n', start);
    }
    if (start < chunk.length) {
      this.pieces.push(chunk.slice(start));
      this.pending += chunk.length - start;
    }
    return this.pending <= this.maxLineBytes;
  }

  /** The unterminated tail, if any. */
  flush(): void {
    if (this.pending > 0) {
      this.emit();
    }
  }

  private emit(): void {
    const line = this.pieces.length === 1 ? (this.pieces[0] ?? '') : this.pieces.join('');
    this.pieces = [];
    this.pending = 0;
    this.onLine(line);
  }
}
