/**
 * Runs exactly one JavaScript task inside the sandbox, then exits. Reads a `start` message on
 * stdin, imports the task module from the read-only package folder, calls its default export
 * with `(input, ctx)`, and reports progress, log lines and the result or error on fd 3.
 * Imports nothing outside Node's standard library.
 */
import { createWriteStream } from 'node:fs';
import { pathToFileURL } from 'node:url';

import { encodeMessage, LineSplitter, type NodeMessage, RUNNER_FD, type RunnerMessage } from '../protocol.js';

/** The folder the package is mounted at (read-only); the launcher always sets it. */
const PACKAGE_DIR = process.env.TYDRA_PACKAGE_DIR ?? '/task';

export interface TaskContext {
  instanceId: string;
  attempt: number;
  /** Aborted when the TaskInstance is cancelled or about to be killed. */
  signal: AbortSignal;
  progress(value: number | Record<string, unknown>): void;
  log(...args: unknown[]): void;
}

export class TaskRunner {
  private readonly out = createWriteStream('', { fd: RUNNER_FD });
  private readonly abort = new AbortController();
  private started = false;
  private finished = false;

  listen(): void {
    const lines = new LineSplitter(Number.MAX_SAFE_INTEGER, (line) => this.onMessage(line));
    process.stdin.setEncoding('utf8');
    process.stdin.on('data', (chunk: string) => lines.push(chunk));
  }

  fail(error: unknown): void {
    const err = error instanceof Error ? error : new Error(`non-Error value thrown: ${String(error)}`);
    this.finish({ type: 'error', name: err.name, message: err.message, stack: err.stack });
  }

  private onMessage(line: string): void {
    const message = JSON.parse(line) as NodeMessage;
    if (message.type === 'cancel') {
      this.abort.abort(new Error(message.reason));
    } else if (message.type === 'start' && !this.started) {
      this.started = true;
      void this.run(message);
    }
  }

  private async run(start: Extract<NodeMessage, { type: 'start' }>): Promise<void> {
    const ctx: TaskContext = {
      instanceId: start.instanceId,
      attempt: start.attempt,
      signal: this.abort.signal,
      progress: (value) => this.send({ type: 'progress', value }),
      log: (...args) => this.send({ type: 'log', line: args.map(formatArg).join(' ') }),
    };
    try {
      const module = (await import(pathToFileURL(`${PACKAGE_DIR}/${start.module}`).href)) as { default?: unknown };
      const fn = module.default;
      if (typeof fn !== 'function') {
        throw new TypeError(
          `Expected the default export of ${start.module} to be a function (input, ctx) => result, got ${typeof fn}`,
        );
      }
      const value: unknown = await (fn as (input: unknown, ctx: TaskContext) => unknown)(start.input, ctx);
      this.finish({ type: 'result', value: toJsonValue(value) });
    } catch (error) {
      this.fail(error);
    }
  }

  private send(message: RunnerMessage): void {
    if (!this.finished) {
      this.out.write(encodeMessage(message));
    }
  }

  /**
   * Sends the final message, then exits once everything is flushed: one TaskInstance per process.
   * stdout and stderr are pipes, which Node writes asynchronously: `process.exit()` with writes
   * still queued would drop what the task printed last, and the node could neither show it nor
   * hold it to the output limit. So they drain first, and only then goes the final message.
   */
  private finish(message: RunnerMessage): void {
    if (this.finished) {
      return;
    }
    this.finished = true;
    void Promise.all([flushed(process.stdout), flushed(process.stderr)]).then(() => {
      this.out.write(encodeMessage(message));
      this.out.end(() => process.exit(0));
    });
  }
}

/** Resolves once every write queued on `stream` so far went out (or failed: the reader is gone). */
function flushed(stream: NodeJS.WriteStream): Promise<void> {
  if (stream.writableLength === 0 || stream.destroyed) {
    return Promise.resolve();
  }
  // Writes complete in order, so an empty write's callback runs after all the earlier ones.
  return new Promise((resolve) => stream.write('', () => resolve()));
}

/** The result must survive JSON: `undefined` becomes `null`; BigInt or cycles fail the task. */
function toJsonValue(value: unknown): unknown {
  if (value === undefined) {
    return null;
  }
  let text: string | undefined;
  try {
    text = JSON.stringify(value);
  } catch (error) {
    throw new TypeError(
      `Expected the task's result to be JSON-serialisable, got an error: ${(error as Error).message}`,
    );
  }
  return text === undefined ? null : (JSON.parse(text) as unknown);
}

function formatArg(arg: unknown): string {
  if (typeof arg === 'string') {
    return arg;
  }
  if (arg instanceof Error) {
    return arg.stack ?? arg.message;
  }
  try {
    return JSON.stringify(arg) ?? String(arg);
  } catch {
    return String(arg);
  }
}
