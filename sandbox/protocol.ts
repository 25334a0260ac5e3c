/**
 * The node ↔ runner protocol. The runner is the only code tydra puts inside a sandbox for a
 * JavaScript task. Messages are newline-delimited JSON: the node writes to the runner's stdin,
 * the runner writes to file descriptor 3. The task's own stdout and stderr stay free for
 * `console.log`, and nothing the task prints can be mistaken for a protocol message.
 *
 * This file has no imports: it is loaded inside the sandbox, where only Node's standard library
 * exists, and it must start as fast as bare `node`.
 */

/** The runner's protocol file descriptor. */
export const RUNNER_FD = 3;

/** Node → runner. */
export type NodeMessage =
  | {
      type: 'start';
      instanceId: string;
      attempt: number;
      /** Package-relative path of the task module. */
      module: string;
      input: unknown;
    }
  | { type: 'cancel'; reason: string };

/** Runner → node. */
export type RunnerMessage =
  | { type: 'progress'; value: number | Record<string, unknown> }
  | { type: 'log'; line: string }
  | { type: 'result'; value: unknown }
  | { type: 'error'; name: string; message: string; stack?: string };

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
