/**
 * Sandboxes whose TaskInstance settled before they were gone (`RunTaskOptions.onTeardown`): a
 * JavaScript task's result counts at its runner's final message, and the exit and the cgroup's
 * removal follow. The node waits for them before it removes its parent cgroup at close.
 */
export class Teardowns {
  private readonly pending = new Set<Promise<void>>();

  /** Tracks one sandbox's teardown until it ends (it never rejects: see `RunningSandbox.ending`). */
  readonly track = (ended: Promise<void>): void => {
    this.pending.add(ended);
    void ended.finally(() => this.pending.delete(ended));
  };

  /** Resolves once every tracked teardown ended, those tracked meanwhile included. */
  async idle(): Promise<void> {
    while (this.pending.size > 0) {
      await Promise.allSettled([...this.pending]);
    }
  }
}
