/**
 * The runner's side of the protocol: messages out on fd 3, and the one way a runner process
 * ends (drain what the task printed, send the last message, exit).
 */
import { createWriteStream } from 'node:fs';

import { encodeMessage, RUNNER_FD, type RunnerMessage } from '../protocol.js';

export class Channel {
  private readonly out = createWriteStream('', { fd: RUNNER_FD });
  private finished = false;

  send(message: RunnerMessage): void {
    if (!this.finished) {
      this.out.write(encodeMessage(message));
    }
  }

  /** Resolves once what the task printed so far went out on stdout and stderr. */
  flushOutput(): Promise<void> {
    return Promise.all([flushed(process.stdout), flushed(process.stderr)]).then(() => undefined);
  }

  /** Reports an error the way a task fails (the last message), then exits. */
  fail(error: unknown): void {
    const err = toError(error);
    this.finish({ type: 'error', name: err.name, message: err.message, stack: err.stack });
  }

  /**
   * Sends the final message (if any), then exits 0 once everything is flushed. stdout and stderr
   * are pipes, which Node writes asynchronously: `process.exit()` with writes still queued would
   * drop what the task printed last, and the node could neither show it nor hold it to the output
   * limit. So they drain first, and only then goes the final message.
   */
  finish(message?: RunnerMessage): void {
    if (this.finished) {
      return;
    }
    this.finished = true;
    void this.flushOutput().then(() => {
      if (message !== undefined) {
        this.out.write(encodeMessage(message));
      }
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

/** Anything thrown, as an Error (tasks may throw strings or plain objects). */
export function toError(error: unknown): Error {
  return error instanceof Error ? error : new Error(`non-Error value thrown: ${String(error)}`);
}
