/**
 * The sandbox's streams: feeds stdin, turns stdout and stderr into log lines (or, for a command,
 * its result), reads the runner's protocol fd, counts each stream's bytes against the output
 * limit, and records what it saw for `outcome`. Every stream is read to its end, even past a
 * limit, so the sandbox never blocks on a full pipe and nothing it wrote goes uncounted; only the
 * protocol fd is read more slowly while its progress messages come too fast (`captureProtocol`).
 */
import type { Readable, Writable } from 'node:stream';
import { finished } from 'node:stream/promises';
import { setTimeout as delay } from 'node:timers/promises';

import { encodeMessage, LineSplitter, MAX_PROGRESS_BYTES, type NodeMessage, progressValueBytes } from '../protocol.js';
import type { FinalMessage, LimitHit } from './outcome.js';
import { type PhaseRunnerMessage, parseRunnerMessage } from './runner-message.js';
import { TokenBucket } from './token-bucket.js';

const STDERR_TAIL_BYTES = 2048;
/** Longest log line handed on; longer ones are cut into pieces. */
const LOG_LINE_BYTES = 16_384;
/**
 * The progress messages a sandbox may send: a burst, then so many a second. The runner sends at
 * most 10 a second (`PROGRESS_SEND_MS`) and one before its final message, so twice that never
 * holds it back, timers late on a loaded machine included; the burst covers a runner started
 * late or stalled, and is what a flood gets before it is held: a hundred parses of at most
 * 64 KiB each, once per sandbox. Held to 20 a second a flood costs the node about as little as a
 * well-behaved task (each value is then handed on, but the node's Redis writes are coalesced).
 */
const PROGRESS_BURST = 100;
const PROGRESS_PER_SECOND = 20;

export interface SandboxStreams {
  stdin: Writable;
  stdout: Readable;
  stderr: Readable;
  /** The runner's fd 3 (JavaScript tasks only). */
  protocol?: Readable;
}

export interface CaptureOptions {
  outputBytes: number;
  maxResultBytes: number;
  onLog: (line: string) => void;
  onProgress?: (value: number | Record<string, unknown>) => void;
  /** Called at each limit hit (with it) or protocol error (without): the sandbox must stop. */
  onStop: (hit?: LimitHit) => void;
  /**
   * The runner's messages of a parallel task's phase (`unit`, `unit-result`, `unit-error`);
   * absent, they are a protocol error.
   */
  onMessage?: (message: PhaseRunnerMessage) => void;
  /**
   * A command's stdout as data lines (a split's units, a worker's results), each up to
   * `maxResultBytes` and not counted as output; absent, stdout is a command's one result.
   */
  onStdoutLine?: (line: string) => void;
  /** A pooled runner's `ready` message (`warm-sandbox.ts`); absent, that message is a protocol error. */
  onReady?: () => void;
}

/** What the streams carried, filled in as it arrives; complete once `ended` resolves. */
export interface CapturedOutput {
  final?: FinalMessage;
  /** A JavaScript runner said `started`: bwrap had set the sandbox up (see `outcome.ts`). */
  started?: boolean;
  protocolError?: string;
  stderrTail: string;
  stdout: string;
}

export interface StreamCapture {
  output: CapturedOutput;
  /**
   * Resolves when every output stream has ended, or `graceMs` after the call, whichever comes
   * first; then the streams are destroyed. Call it once the sandbox exited: normally every writer
   * is dead and the pipes drain at once, but a sandbox process bwrap cloned before it was killed
   * (and never reported) may hold them open for ever.
   */
  ended(graceMs: number): Promise<void>;
  /**
   * Emits what stdout and stderr hold of an unterminated last line now, as their end would: for
   * a caller that judges a run at the runner's final message, before the streams end.
   */
  flushLines(): void;
  /** Resolves when the runner's final message (`output.final`) arrived; never, without one. */
  final: Promise<void>;
  /**
   * Call at the sandbox's exit: the protocol fd is no longer held back (`captureProtocol`), so what
   * the sandbox left in its pipe, a final message behind a flood included, is read at once.
   */
  exited(): void;
}

/** Wires the streams of a sandbox; `protocol` present means a JavaScript task under the runner. */
export function captureStreams(streams: SandboxStreams, options: CaptureOptions): StreamCapture {
  const output: CapturedOutput = { stderrTail: '', stdout: '' };
  const hit = (limit: LimitHit): void => options.onStop(limit);
  const flushers: Array<() => void> = [];
  let releaseProtocol = (): void => undefined;
  let onFinal = (): void => undefined;
  const final = new Promise<void>((resolve) => (onFinal = resolve));
  const stderrLines = captureLines(streams.stderr, options.outputBytes, (line) => options.onLog(`[stderr] ${line}`), {
    onLimit: () => hit({ limit: 'outputBytes', stream: 'stderr' }),
    onChunk: (chunk) => (output.stderrTail = (output.stderrTail + chunk).slice(-STDERR_TAIL_BYTES)),
  });
  flushers.push(stderrLines);
  if (options.onStdoutLine !== undefined) {
    captureDataLines(streams.stdout, options.maxResultBytes, options.onStdoutLine, () => hit({ limit: 'resultBytes' }));
  } else if (streams.protocol === undefined) {
    captureResult(streams.stdout, Math.min(options.outputBytes, options.maxResultBytes), output, () =>
      hit({ limit: 'outputBytes', stream: 'stdout' }),
    );
  } else {
    const stdoutLines = captureLines(streams.stdout, options.outputBytes, (line) => options.onLog(`[stdout] ${line}`), {
      onLimit: () => hit({ limit: 'outputBytes', stream: 'stdout' }),
    });
    flushers.push(stdoutLines);
    releaseProtocol = captureProtocol(streams.protocol, { ...options, onFinal }, output, hit);
  }
  const readables = [streams.stdout, streams.stderr, ...(streams.protocol ? [streams.protocol] : [])];
  const allEnded = Promise.all(readables.map(endOf));
  const ended = async (graceMs: number): Promise<void> => {
    releaseProtocol(); // normally done at the exit already (`exited`)
    const grace = new AbortController();
    await Promise.race([allEnded, delay(graceMs, undefined, { signal: grace.signal }).catch(() => undefined)]);
    grace.abort();
    readables.forEach((stream) => stream.destroy());
  };
  return {
    output,
    ended,
    flushLines: () => flushers.forEach((flush) => flush()),
    final,
    exited: () => releaseProtocol(),
  };
}

/** Sends the runner its `start` message and, on abort, `cancel`; returns the listener's remover. */
export function startRunner(
  stdin: Writable,
  start: Omit<Extract<NodeMessage, { type: 'start' }>, 'type'>,
  signal: AbortSignal | undefined,
): () => void {
  stdin.on('error', () => undefined); // EPIPE when the task dies before reading
  stdin.write(encodeMessage({ type: 'start', ...start }));
  const cancel = (): void => void stdin.write(encodeMessage({ type: 'cancel', reason: 'cancelled' }));
  signal?.addEventListener('abort', cancel, { once: true });
  return () => signal?.removeEventListener('abort', cancel);
}

/** Gives a command its input: one JSON value on stdin, then end-of-file. */
export function feedCommand(stdin: Writable, input: unknown): void {
  stdin.on('error', () => undefined);
  stdin.end(JSON.stringify(input ?? null));
}

/** A command's stdout is its result: kept whole, unless it grows past `maxBytes`. */
function captureResult(stream: Readable, maxBytes: number, output: CapturedOutput, onLimit: () => void): void {
  let bytes = 0;
  let over = false;
  stream.setEncoding('utf8');
  stream.on('data', (chunk: string) => {
    bytes += Buffer.byteLength(chunk);
    if (over || bytes > maxBytes) {
      over = true;
      output.stdout = '';
      onLimit();
      return;
    }
    output.stdout += chunk;
  });
}

/**
 * The runner's messages: progress values and `ctx.log` lines on the way, then the final message.
 * `ctx.log` lines count toward `outputBytes`; a progress value has a cap of its own
 * (`MAX_PROGRESS_BYTES`). Past either the sandbox is being stopped, and nothing more it sends is
 * handed on: no log line, no progress, no unit and no unit's result (a work unit that broke a
 * limit fails with it rather than succeeding with the result that followed).
 *
 * Progress values are not output: a long task reporting per item would reach any byte budget.
 * Their count is bounded instead. The runner coalesces them (`PROGRESS_SEND_MS`), but a task can
 * write lines on fd 3 itself, at pipe speed, and each is parsed here on the node's one thread. So
 * they draw on a token bucket ({@link PROGRESS_BURST}, {@link PROGRESS_PER_SECOND}): one that finds
 * it empty is still handed on (the node's Redis writes are coalesced, so that costs nothing more),
 * then fd 3 is not read until the token it owes is back. A flood then blocks on its own writes.
 * That holds back whatever follows on fd 3, units and units' results included, which are not
 * counted: only a runner that does not coalesce is ever held. The returned function ends the
 * holding once the sandbox exited (see `captureDataLines`); past that, a progress value the bucket
 * has no token for is dropped.
 */
function captureProtocol(
  stream: Readable,
  options: CaptureOptions & { onFinal: () => void },
  output: CapturedOutput,
  hit: (limit: LimitHit) => void,
): () => void {
  let logBytes = 0;
  let refused = false;
  const progress = rateProgress(options.onProgress);
  const refuse = (limit: LimitHit): void => {
    refused = true;
    hit(limit);
  };
  const onLine = (line: string): number => {
    const message = parseRunnerMessage(line);
    if (message === undefined) {
      output.protocolError ??= `Expected a runner message, got ${JSON.stringify(line.slice(0, 200))}`;
      options.onStop();
    } else if (refused && message.type !== 'result' && message.type !== 'error') {
      // Dropped. A final message is still recorded: `outcome` lets the broken limit win over it.
    } else if (message.type === 'progress') {
      const bytes = progressValueBytes(line); // as the runner measures it; a padded line only costs its sender
      if (bytes > MAX_PROGRESS_BYTES) {
        refuse({ limit: 'progressBytes', bytes });
      } else {
        return progress.take(message.value);
      }
    } else if (message.type === 'log') {
      logBytes += Buffer.byteLength(message.line) + 1; // + its newline: an empty line is not free
      if (logBytes > options.outputBytes) {
        refuse({ limit: 'outputBytes', stream: 'ctx.log' });
      } else {
        options.onLog(message.line.slice(0, LOG_LINE_BYTES));
      }
    } else if (message.type === 'result' || message.type === 'error') {
      if (output.final === undefined) {
        output.final = message;
        options.onFinal();
      }
    } else if (message.type === 'started') {
      output.started = true;
    } else if (message.type === 'ready') {
      takeReady(options, output);
    } else if (options.onMessage !== undefined) {
      options.onMessage(message);
    } else {
      output.protocolError ??= `Expected a task's runner message, got a ${JSON.stringify(message.type)} message`;
      options.onStop();
    }
    return 0;
  };
  const guarded = guardLine(onLine, output, options.onStop);
  const release = captureDataLines(stream, options.maxResultBytes, guarded, () => hit({ limit: 'resultBytes' }));
  return () => {
    progress.exited();
    release();
  };
}

/**
 * `onLine`, where a message the node cannot handle is a protocol error rather than an exception.
 * What the runner sends is hostile input, and it is handled in a stream's 'data' event: a throw
 * there (a value nested deep enough to parse but not to walk, say: `RangeError: Maximum call
 * stack size exceeded`) would be uncaught, and take the node down with every TaskInstance on it.
 */
function guardLine(
  onLine: (line: string) => number,
  output: CapturedOutput,
  onStop: () => void,
): (line: string) => number {
  return (line) => {
    try {
      return onLine(line);
    } catch (error) {
      output.protocolError ??= `Expected a runner message the node can handle, got one it failed on: ${String(error)}`;
      onStop();
      return 0;
    }
  };
}

/** A pooled runner's `ready`; from a runner not pooled, a protocol error. */
function takeReady(options: CaptureOptions, output: CapturedOutput): void {
  if (options.onReady === undefined) {
    output.protocolError ??= 'Expected a task\'s runner message, got a "ready" message from a runner not pooled';
    options.onStop();
  } else {
    options.onReady();
  }
}

/**
 * Progress values handed on under the token bucket (see `captureProtocol`): `take` returns how
 * long to hold fd 3 after the value; once `exited`, a value without a token is dropped instead.
 */
function rateProgress(onProgress: CaptureOptions['onProgress']): {
  take: (value: number | Record<string, unknown>) => number;
  exited: () => void;
} {
  const bucket = new TokenBucket(PROGRESS_BURST, PROGRESS_PER_SECOND);
  let exited = false;
  return {
    take: (value) => {
      if (!exited) {
        onProgress?.(value);
        return bucket.take();
      }
      if (bucket.available) {
        bucket.take();
        onProgress?.(value);
      }
      return 0;
    },
    exited: () => (exited = true),
  };
}

/**
 * Lines of data (protocol messages, units, results: no output limit), each up to `maxLineBytes`;
 * past it `onLimit` once, and the rest is read and dropped (buffering it would grow without bound).
 * `onLine` may ask for a hold: `stream` is paused for that many milliseconds, and the lines already
 * read meanwhile (at most the chunk at hand) wait, in order. The returned function ends every hold
 * for good, at once: for a sandbox that exited, whose pipe holds all that is left to read, and a
 * stream held paused would never end (its 'end' comes only once its data is read).
 */
function captureDataLines(
  stream: Readable,
  maxLineBytes: number,
  onLine: (line: string) => number | void,
  onLimit: () => void,
): () => void {
  let over = false;
  let released = false;
  let hold: NodeJS.Timeout | undefined;
  const waiting: string[] = [];
  const refuse = (): void => {
    over = true;
    onLimit();
  };
  const take = (line: string): void => {
    // The splitter refuses only a line still unterminated past the limit; one that arrived
    // whole in a chunk is measured here.
    if (!over && line.length > maxLineBytes) {
      refuse();
    } else if (!over) {
      const holdMs = onLine(line) ?? 0;
      if (holdMs > 0 && !released) {
        stream.pause();
        hold = setTimeout(pump, holdMs);
      }
    }
  };
  /** Hands on what waits until the next hold; resumes the stream once nothing does. */
  function pump(): void {
    hold = undefined;
    let next = 0;
    while (hold === undefined && next < waiting.length) {
      take(waiting[next++] as string);
    }
    waiting.splice(0, next);
    if (hold === undefined) {
      stream.resume();
    }
  }
  const lines = new LineSplitter(maxLineBytes, (line) => {
    if (hold === undefined && waiting.length === 0) {
      take(line);
    } else {
      waiting.push(line);
    }
  });
  stream.setEncoding('utf8');
  stream.on('data', (chunk: string) => {
    if (!over && !lines.push(chunk)) {
      refuse();
    }
  });
  stream.on('end', () => lines.flush());
  return () => {
    released = true;
    if (hold !== undefined) {
      clearTimeout(hold);
      pump();
    }
  };
}

/**
 * Emits whole lines from `stream` (a line longer than 16 KiB is cut into pieces) and calls
 * `onLimit` once when more than `maxBytes` arrived; nothing after that is kept.
 */
function captureLines(
  stream: Readable,
  maxBytes: number,
  onLine: (line: string) => void,
  hooks: { onLimit: () => void; onChunk?: (chunk: string) => void },
): () => void {
  let seen = 0;
  let over = false;
  const lines = new LineSplitter(LOG_LINE_BYTES, (line) => {
    if (!over) {
      onLine(line);
    }
  });
  stream.setEncoding('utf8');
  stream.on('data', (chunk: string) => {
    if (over) {
      return;
    }
    hooks.onChunk?.(chunk);
    seen += Buffer.byteLength(chunk);
    if (seen > maxBytes) {
      over = true;
      hooks.onLimit();
      return;
    }
    if (!lines.push(chunk)) {
      lines.flush();
    }
  });
  stream.on('end', () => lines.flush());
  return () => lines.flush();
}

/** Resolves when `stream` ended, closed or failed: whichever way, nothing more will come. */
function endOf(stream: Readable): Promise<void> {
  return finished(stream).catch(() => undefined);
}
