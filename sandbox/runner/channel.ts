/**
 * The runner's side of the protocol: messages in on fd 0, out on fd 3, and the one way a runner
 * process ends (drain what the task printed, send the last message, wait to be let go, exit).
 *
 * Plain fd calls rather than streams on the way to `start`: `process.stdin` on a pipe is a
 * `net.Socket`, and loading `net` (and a WriteStream for fd 3) took about 5 ms of every cold
 * start before `start` could even be read. fd 3 is a blocking socket (the node's spawn leaves the
 * sandbox's end so), so `writeSync` writes each message whole, in order, and a task that logs
 * faster than the node reads waits instead of queueing without bound. fd 0: see `InputReader`.
 */
import { readSync, writeSync } from 'node:fs';

import { encodeMessage, RUNNER_FD, type RunnerMessage } from '../protocol.js';
import type { Pausable } from './item-buffer.js';
import { ProgressCoalescer } from './progress-coalescer.js';

/** stdout/stderr streams the process created: Node makes them on first use, and a task that never printed has none to flush. */
const createdStdio = new Set<NodeJS.WriteStream>();

/**
 * Records each of `process.stdout` / `process.stderr` when Node creates it (its lazy getter runs).
 * Must run before anything touches them: main.ts calls it first.
 */
export function trackStdio(): void {
  for (const name of ['stdout', 'stderr'] as const) {
    const descriptor = Object.getOwnPropertyDescriptor(process, name);
    const get = descriptor?.get?.bind(process);
    if (descriptor === undefined || get === undefined || descriptor.configurable !== true) {
      createdStdio.add(process[name]); // not a lazy getter here: flush it always
      continue;
    }
    Object.defineProperty(process, name, {
      ...descriptor,
      get() {
        const stream = get() as NodeJS.WriteStream;
        createdStdio.add(stream);
        return stream;
      },
    });
  }
}

export class Channel {
  private finished = false;
  private readonly progressLines = new ProgressCoalescer(writeLine);

  send(message: RunnerMessage): void {
    if (!this.finished) {
      writeMessage(message);
    }
  }

  /**
   * `ctx.progress(value)`: sent coalesced (`ProgressCoalescer`), the latest value before the
   * final message. Not flushed before a work unit's answer: that would send one per unit, and a
   * worker of many short units would report faster than the node reads progress.
   */
  progress(value: number | Record<string, unknown>): void {
    if (!this.finished) {
      this.progressLines.push(encodeMessage({ type: 'progress', value }));
    }
  }

  /** Resolves once what the task printed so far went out on stdout and stderr. */
  flushOutput(): Promise<void> {
    return Promise.all([...createdStdio].map(flushed)).then(() => undefined);
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
   * limit. So they drain first, and only then go the progress value still waiting and the final
   * message. After a final message the runner holds until the node lets it go
   * ({@link holdUntilLetGo}).
   */
  finish(message?: RunnerMessage): void {
    if (this.finished) {
      return;
    }
    this.finished = true;
    void this.flushOutput().then(() => {
      try {
        this.progressLines.flush();
        if (message !== undefined) {
          writeMessage(message);
          holdUntilLetGo();
        }
      } finally {
        process.exit(0);
      }
    });
  }
}

/**
 * Blocks until the node closes its end of fd 3 (or is gone). An exit is several milliseconds of
 * kernel work (the process, then bwrap's namespaces and mounts) that would compete with the
 * node's hand-over of the result on a small machine; the node lets the runner go once that is
 * done (`RunningSandbox.exitAfter`). The read is synchronous, so no task code runs meanwhile,
 * as none ran after the final message before. The node writes nothing on fd 3; a non-blocking
 * fd 3 (EAGAIN) or any other error ends the hold at once.
 */
function holdUntilLetGo(): void {
  const byte = Buffer.alloc(1);
  try {
    while (readSync(RUNNER_FD, byte, 0, 1, null) > 0) {
      // Nothing is expected here; keep waiting for the end.
    }
  } catch {
    // Exit now.
  }
}

function writeMessage(message: RunnerMessage): void {
  writeLine(encodeMessage(message));
}

/** One whole message on fd 3; dropped when the node is gone (EPIPE): the sandbox dies with it. */
function writeLine(line: string): void {
  const bytes = Buffer.from(line);
  try {
    for (let offset = 0; offset < bytes.length;) {
      offset += writeSync(RUNNER_FD, bytes, offset);
    }
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EPIPE') {
      throw error;
    }
  }
}

/**
 * The node's messages on fd 0, as text. Until `start` arrives the runner has nothing else to do,
 * so it reads synchronously (`readUntil`): no `net` to load, no thread waiting. After it, a
 * `process.stdin` stream takes over (`follow`), for `cancel` and the phases' messages. (A read
 * left waiting on libuv's thread pool instead would keep `process.exit()` from returning: Node
 * joins those threads at exit.)
 */
export class InputReader implements Pausable {
  private readonly decoder = new TextDecoder();
  private paused = false;
  private stream: NodeJS.ReadStream | undefined;

  constructor(
    private readonly onText: (text: string) => void,
    private readonly onEnd: () => void,
  ) {}

  /**
   * Reads and hands on text until `done()` says so after a chunk; returns false at end of input
   * (the node is gone: `onEnd` ran). If fd 0 is non-blocking (EAGAIN), it goes on as a stream.
   */
  readUntil(done: () => boolean): boolean {
    const buffer = Buffer.allocUnsafe(65_536);
    while (!done()) {
      let bytes: number;
      try {
        bytes = readSync(0, buffer, 0, buffer.length, null);
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === 'EAGAIN') {
          this.follow();
          return true;
        }
        bytes = 0;
      }
      if (bytes === 0) {
        const rest = this.decoder.decode();
        if (rest !== '') {
          this.onText(rest);
        }
        this.onEnd();
        return false;
      }
      this.onText(this.decoder.decode(buffer.subarray(0, bytes), { stream: true }));
    }
    return true;
  }

  /** Reads the rest as a stream (idempotent). */
  follow(): void {
    if (this.stream !== undefined) {
      return;
    }
    const stream = process.stdin;
    this.stream = stream;
    const rest = this.decoder.decode();
    if (rest !== '') {
      this.onText(rest);
    }
    stream.setEncoding('utf8');
    stream.on('data', (chunk: string) => this.onText(chunk));
    stream.on('end', () => this.onEnd());
    if (this.paused) {
      stream.pause();
    }
  }

  pause(): void {
    this.paused = true;
    this.stream?.pause();
  }

  resume(): void {
    this.paused = false;
    this.stream?.resume();
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
