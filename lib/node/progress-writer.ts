/**
 * Writes a run's progress to Redis coalesced: one write at a time, at most one per
 * `PROGRESS_WRITE_MS`, and only the latest value reported in between. A task may call
 * `ctx.progress` thousands of times a second, and each write costs Redis two job updates plus,
 * through BullMQ, an entry in two events streams of about 10,000 entries each: written one by
 * one, a flood of values filled Redis and the node's memory (a chain of pending writes without
 * bound). Intermediate values are dropped; the latest one is always written, and `flush` writes it
 * at once, so the value a client reads once the run has ended is the task's last.
 */

/** Shortest time between two progress writes of one run (the first goes at once). */
export const PROGRESS_WRITE_MS = 250;

export class ProgressWriter<T> {
  private pending: { value: T } | undefined;
  private inFlight: Promise<void> | undefined;
  private timer: NodeJS.Timeout | undefined;
  private lastWriteAt = Number.NEGATIVE_INFINITY;

  /** `write` is called with one value at a time; its failure is dropped (progress is best effort). */
  constructor(
    private readonly write: (value: T) => Promise<unknown>,
    private readonly periodMs: number = PROGRESS_WRITE_MS,
  ) {}

  /**
   * Reports `value`: written now, or once the write in flight and the period are over, unless a
   * newer value comes first.
   */
  push(value: T): void {
    this.pending = { value };
    this.schedule();
  }

  /** Resolves once the latest value reported is written (now, without waiting for the period). */
  async flush(): Promise<void> {
    this.disarm();
    while (this.inFlight !== undefined || this.pending !== undefined) {
      if (this.inFlight !== undefined) {
        await this.inFlight;
      } else {
        this.writePending();
      }
    }
    // A value pushed while the loop waited may have armed the timer; it had nothing left to write.
    this.disarm();
  }

  private schedule(): void {
    if (this.inFlight !== undefined || this.timer !== undefined || this.pending === undefined) {
      return;
    }
    const wait = this.lastWriteAt + this.periodMs - performance.now();
    if (wait > 0) {
      this.timer = setTimeout(() => {
        this.timer = undefined;
        this.schedule();
      }, wait).unref();
      return;
    }
    this.writePending();
  }

  private writePending(): void {
    const pending = this.pending;
    if (pending === undefined) {
      return;
    }
    this.pending = undefined;
    this.lastWriteAt = performance.now();
    this.inFlight = this.writeOnce(pending.value)
      .then(
        () => undefined,
        () => undefined,
      )
      .finally(() => {
        this.inFlight = undefined;
        this.schedule();
      });
  }

  /**
   * `write`, whose synchronous throw (a hostile value too deep to mask or encode) is a rejection
   * like any other: it may run from a timer, where a throw would take the node down.
   */
  private writeOnce(value: T): Promise<unknown> {
    try {
      return this.write(value);
    } catch (error) {
      return Promise.reject(error instanceof Error ? error : new Error(String(error)));
    }
  }

  private disarm(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
  }
}
