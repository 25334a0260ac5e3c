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

/** Splits a byte stream into lines; refuses lines longer than `maxLineBytes`. */
export class LineSplitter {
  private buffered = '';

  constructor(
    private readonly maxLineBytes: number,
    private readonly onLine: (line: string) => void,
  ) {}

  /** Returns false once a line grew past the limit (the rest is ignored). */
  push(chunk: string): boolean {
    this.buffered += chunk;
    let newline = this.buffered.indexOf('\n');
    while (newline !== -1) {
      this.onLine(this.buffered.slice(0, newline));
      this.buffered = this.buffered.slice(newline + 1);
      newline = this.buffered.indexOf('\n');
    }
    return this.buffered.length <= this.maxLineBytes;
  }

  /** The unterminated tail, if any. */
  flush(): void {
    if (this.buffered) {
      this.onLine(this.buffered);
      this.buffered = '';
    }
  }
}
