/**
 * When a node job's result has been handed on: BullMQ recorded the job completed or failed in
 * Redis (the worker's `completed` and `failed` events). A simple task's sandbox exits only then
 * (`RunTaskOptions.exitAfter`): its exit is several milliseconds of kernel work that would
 * otherwise compete with that hand-over on a small machine. A job whose processor ended with
 * neither event to follow (moved to delayed, its lock lost, the worker closing) lets its
 * sandbox go {@link HANDOFF_GRACE_MS} after its processor ended.
 */

/** How long after its processor ended a job's sandbox waits for the job's recorded ending. */
export const HANDOFF_GRACE_MS = 1000;

export class Handoffs {
  private readonly pending = new Map<string, () => void>();

  /**
   * Settles once node job `id` was recorded finished ({@link recorded}), or is not waited for
   * any more ({@link processed}, {@link releaseAll}); never rejects.
   */
  after(id: string): Promise<void> {
    // An earlier attempt's wait, should one be left: it has nothing to wait for any more.
    this.recorded(id);
    return new Promise((resolve) => this.pending.set(id, resolve));
  }

  /** Node job `id` was recorded completed or failed. */
  readonly recorded = (id: string | undefined): void => {
    const resolve = id === undefined ? undefined : this.pending.get(id);
    if (id !== undefined && resolve !== undefined) {
      this.pending.delete(id);
      resolve();
    }
  };

  /** The processor of node job `id` returned or threw: its recorded ending is due at once. */
  processed(id: string): void {
    const resolve = this.pending.get(id);
    if (resolve === undefined) {
      return;
    }
    setTimeout(() => {
      if (this.pending.get(id) === resolve) {
        this.recorded(id);
      }
    }, HANDOFF_GRACE_MS).unref();
  }

  /** Lets every waiting sandbox go: the node is closing. */
  releaseAll(): void {
    for (const id of [...this.pending.keys()]) {
      this.recorded(id);
    }
  }
}
