/**
 * Reduce's input inside the runner: the work results arrive on stdin faster than reduce may
 * take them, so at most about `high` of them wait here. Over it stdin is paused (the pipe fills
 * and the node's writes wait for 'drain'); under `low` it is resumed. One consumer.
 */
export interface Pausable {
  pause(): void;
  resume(): void;
}

export class ItemBuffer implements AsyncIterable<unknown> {
  private items: unknown[] = [];
  private head = 0;
  private ended = false;
  private paused = false;
  private failure: Error | undefined;
  private waiter: (() => void) | undefined;

  constructor(
    private readonly input: Pausable,
    private readonly high = 256,
    private readonly low = 64,
  ) {}

  /** Items waiting to be taken. */
  get size(): number {
    return this.items.length - this.head;
  }

  push(item: unknown): void {
    this.items.push(item);
    if (!this.paused && this.size > this.high) {
      this.paused = true;
      this.input.pause();
    }
    this.wake();
  }

  /** No more items; `error` makes the consumer's next read throw it instead. */
  end(error?: Error): void {
    this.ended = true;
    this.failure ??= error;
    this.wake();
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<unknown, void, undefined> {
    for (;;) {
      if (this.size > 0) {
        yield this.take();
      } else if (this.ended) {
        if (this.failure !== undefined) {
          throw this.failure;
        }
        return;
      } else {
        await new Promise<void>((resolve) => (this.waiter = resolve));
      }
    }
  }

  private take(): unknown {
    const item = this.items[this.head];
    this.items[this.head] = undefined;
    this.head += 1;
    if (this.head > 1024 && this.head * 2 > this.items.length) {
      // Drop the taken slots now and then, so the array does not grow with the whole stream.
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
    if (this.paused && this.size < this.low) {
      this.paused = false;
      this.input.resume();
    }
    return item;
  }

  private wake(): void {
    const wake = this.waiter;
    this.waiter = undefined;
    wake?.();
  }
}
