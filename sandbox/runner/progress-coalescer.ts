/**
 * `ctx.progress`, coalesced. A task may report once per item of a long loop (`ctx.progress(i / n)`),
 * thousands of times a second; the node parses each message on its main thread and, from a runner
 * that sends faster than it expects, stops reading fd 3 for a while (`launcher/stream-capture.ts`).
 * So a value goes out at once only when the last one went out at least `PROGRESS_SEND_MS` ago;
 * otherwise it replaces the one waiting, which a timer sends when the period is over, or `flush`
 * sooner (before the runner's final message, so the last value reported is the one the node sees).
 *
 * A synchronous loop never lets the timer run: each call reads the clock and sends when the period
 * passed, so such a loop still reports every 100 ms, and a call costs a clock read and the
 * encoding of its value, never a wait. `Date.now()`, not `performance.now()`: Node sets up the
 * `performance` global on first use, and the runner loads nothing it can do without
 * (`sandbox/README.md`); a clock set back only makes one value go early (below).
 */
import { MAX_PROGRESS_BYTES, PROGRESS_SEND_MS, progressValueBytes } from '../protocol.js';

export class ProgressCoalescer {
  private sentAt = Number.NEGATIVE_INFINITY;
  private pending: string | undefined;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly write: (line: string) => void,
    private readonly now: () => number = Date.now,
  ) {}

  /** Takes one progress message, encoded (the encoding throws to the task when its value is not JSON). */
  push(line: string): void {
    const now = this.now();
    // A value over the cap (its line is, at least) goes at once: the node fails the run with it,
    // and a work unit that sent it must fail, not a later one. A clock set back counts as the
    // period being over. The value waiting, if any, is older than this one: dropped.
    if (now - this.sentAt >= PROGRESS_SEND_MS || now < this.sentAt || progressValueBytes(line) > MAX_PROGRESS_BYTES) {
      this.disarm();
      this.send(line, now);
      return;
    }
    this.pending = line;
    if (this.timer === undefined) {
      // A runner that ends flushes first; one whose event loop is otherwise empty must still exit.
      this.timer = setTimeout(() => this.flush(), this.sentAt + PROGRESS_SEND_MS - now).unref();
    }
  }

  /** Sends the value waiting, if any, now. */
  flush(): void {
    this.disarm();
    const line = this.pending;
    if (line !== undefined) {
      this.send(line, this.now());
    }
  }

  private disarm(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
  }

  private send(line: string, now: number): void {
    this.pending = undefined;
    this.sentAt = now;
    this.write(line);
  }
}
