/**
 * Split's backpressure inside the runner: the node grants credits, one per work unit it is ready
 * to take; `take()` waits while there are none, so the split's iterator is not pulled ahead.
 */
export class Credits {
  private available = 0;
  private waiter: (() => void) | undefined;

  add(count: number): void {
    this.available += count;
    if (this.available > 0 && this.waiter !== undefined) {
      const wake = this.waiter;
      this.waiter = undefined;
      wake();
    }
  }

  /** Resolves once a credit is available, and uses it. One caller at a time. */
  async take(): Promise<void> {
    while (this.available <= 0) {
      await new Promise<void>((resolve) => (this.waiter = resolve));
    }
    this.available -= 1;
  }
}
