/**
 * The sandbox's streams: feeds stdin, turns stdout and stderr into log lines (or, for a command,
 * its result), reads the runner's protocol fd, counts each stream's bytes against the output
 * limit, and records what it saw for `outcome`. Every stream is read to its end, even past a
 * limit, so the sandbox never blocks on a full pipe and nothing it wrote goes uncounted.
 */
import type { Readable, Writable } from 'node:stream';
import { finished } from 'node:stream/promises';
import { setTimeout as delay } from 'node:timers/promises';

import { encodeMessage, LineSplitter, MAX_PROGRESS_BYTES, type NodeMessage } from '../protocol.js';
import type { FinalMessage, LimitHit } from './outcome.js';
import { type PhaseRunnerMessage, parseRunnerMessage } from './runner-message.js';

const STDERR_TAIL_BYTES = 2048;
/** Longest log line handed on; longer ones are cut into pieces. */
const LOG_LINE_BYTES = 16_384;

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
}

/** Wires the streams of a sandbox; `protocol` present means a JavaScript task under the runner. */
export function captureStreams(streams: SandboxStreams, options: CaptureOptions): StreamCapture {
  const output: CapturedOutput = { stderrTail: '', stdout: '' };
  const hit = (limit: LimitHit): void => options.onStop(limit);
  const flushers: Array<() => void> = [];
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
    captureProtocol(streams.protocol, { ...options, onFinal }, output, hit);
  }
  const readables = [streams.stdout, streams.stderr, ...(streams.protocol ? [streams.protocol] : [])];
  const allEnded = Promise.all(readables.map(endOf));
  const ended = async (graceMs: number): Promise<void> => {
    const grace = new AbortController();
    await Promise.race([allEnded, delay(graceMs, undefined, { signal: grace.signal }).catch(() => undefined)]);
    grace.abort();
    readables.forEach((stream) => stream.destroy());
  };
  return { output, ended, flushLines: () => flushers.forEach((flush) => flush()), final };
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
 * Progress values and log lines are what the task sends the operator, and both end up in Redis:
 * they share one `outputBytes` budget, and a progress value has its own cap besides
 * (`MAX_PROGRESS_BYTES`). Past either the sandbox is being stopped, and nothing more it sends is
 * handed on: no log line, no progress, no unit and no unit's result (a work unit that broke a
 * limit fails with it rather than succeeding with the result that followed).
 */
function captureProtocol(
  stream: Readable,
  options: CaptureOptions & { onFinal: () => void },
  output: CapturedOutput,
  hit: (limit: LimitHit) => void,
): void {
  let sentBytes = 0;
  let refused = false;
  const refuse = (limit: LimitHit): void => {
    refused = true;
    hit(limit);
  };
  /** Counts `bytes` against the budget; false (and the limit hit) when they do not fit. */
  const spend = (bytes: number, stream: 'ctx.log' | 'ctx.progress'): boolean => {
    sentBytes += bytes;
    if (sentBytes <= options.outputBytes) {
      return true;
    }
    refuse({ limit: 'outputBytes', stream });
    return false;
  };
  const onLine = (line: string): void => {
    const message = parseRunnerMessage(line);
    if (message === undefined) {
      output.protocolError ??= `Expected a runner message, got ${JSON.stringify(line.slice(0, 200))}`;
      options.onStop();
    } else if (refused && message.type !== 'result' && message.type !== 'error') {
      // Dropped. A final message is still recorded: `outcome` lets the broken limit win over it.
    } else if (message.type === 'progress') {
      // Measured as the JSON the node writes to Redis, not as the line (which may be padded).
      const bytes = Buffer.byteLength(JSON.stringify(message.value));
      if (bytes > MAX_PROGRESS_BYTES) {
        refuse({ limit: 'progressBytes', bytes });
      } else if (spend(bytes, 'ctx.progress')) {
        options.onProgress?.(message.value);
      }
    } else if (message.type === 'log') {
      if (spend(Buffer.byteLength(message.line), 'ctx.log')) {
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
      if (options.onReady === undefined) {
        output.protocolError ??= 'Expected a task\'s runner message, got a "ready" message from a runner not pooled';
        options.onStop();
      } else {
        options.onReady();
      }
    } else if (options.onMessage !== undefined) {
      options.onMessage(message);
    } else {
      output.protocolError ??= `Expected a task's runner message, got a ${JSON.stringify(message.type)} message`;
      options.onStop();
    }
  };
  captureDataLines(stream, options.maxResultBytes, onLine, () => hit({ limit: 'resultBytes' }));
}

/**
 * Lines of data (protocol messages, units, results: no output limit), each up to `maxLineBytes`;
 * past it `onLimit` once, and the rest is read and dropped (buffering it would grow without bound).
 */
function captureDataLines(
  stream: Readable,
  maxLineBytes: number,
  onLine: (line: string) => void,
  onLimit: () => void,
): void {
  let over = false;
  const refuse = (): void => {
    over = true;
    onLimit();
  };
  const lines = new LineSplitter(maxLineBytes, (line) => {
    if (over) {
      return;
    }
    // The splitter refuses only a line still unterminated past the limit; one that arrived
    // whole in a chunk is measured here.
    if (line.length > maxLineBytes) {
      refuse();
    } else {
      onLine(line);
    }
  });
  stream.setEncoding('utf8');
  stream.on('data', (chunk: string) => {
    if (!over && !lines.push(chunk)) {
      refuse();
    }
  });
  stream.on('end', () => lines.flush());
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
