/**
 * The node's slots, shared by its BullMQ Workers: the node queue's (simple tasks, a parallel
 * task's reduce) and the workunits ones (batches of workunits: `workunits`, and `workunits.secrets`
 * on a node that holds a secret key). Each Worker may hold up to the node's concurrency in jobs;
 * the gate is what keeps the sandboxes doing work at that number.
 * A parallel task's split runs outside the gate: it only produces units, and holding a slot while
 * it waits for them to be worked off would deadlock a one-slot node.
 */
export class SlotGate {
  private used = 0;
  private readonly waiting: Array<() => void> = [];
  private readonly listeners = new Set<(used: number) => void>();

  constructor(readonly size: number) {}

  get inUse(): number {
    return this.used;
  }

  async acquire(): Promise<void> {
    if (this.used < this.size) {
      this.used += 1;
      this.changed();
      return;
    }
    await new Promise<void>((resolve) => this.waiting.push(resolve));
  }

  /** Hands the slot to the next waiter, if any, else frees it. */
  release(): void {
    const next = this.waiting.shift();
    if (next !== undefined) {
      next();
      return;
    }
    this.used = Math.max(0, this.used - 1);
    this.changed();
  }

  async with<T>(fn: () => Promise<T>): Promise<T> {
    await this.acquire();
    try {
      return await fn();
    } finally {
      this.release();
    }
  }

  onChange(listener: (used: number) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private changed(): void {
    for (const listener of this.listeners) {
      listener(this.used);
    }
  }
}
