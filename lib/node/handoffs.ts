/**
 * When a node job's result has been handed on: BullMQ recorded the job completed or failed in
 * Redis (the worker's `completed` and `failed` events). A simple task's sandbox exits only then
 * (`RunTaskOptions.exitAfter`): its exit is several milliseconds of kernel work that would
 * otherwise compete with that hand-over on a small machine. A job whose processor ended with
 * neither event to follow (its lock lost, Redis out of reach, the worker closing) lets its
 * sandbox go {@link HANDOFF_GRACE_MS} after its processor ended; one moved to delayed, at once.
 * Only simple tasks' node jobs wait here (a parallel task's coordinator has no such sandbox).
 */

/** How long after its processor ended a job's sandbox waits for the job's recorded ending. */
export const HANDOFF_GRACE_MS = 1000;

/** What let a job's sandbox go: its recorded ending (`event`), the grace after its processor, the node closing. */
export type HandoffBy = 'event' | 'grace' | 'close';

export class Handoffs {
  private readonly pending = new Map<string, () => void>();

  /** `onHandoff` counts each wait that ended, by what ended it (`tydra_node_job_handoffs_total`). */
  constructor(private readonly onHandoff: (by: HandoffBy) => void = () => undefined) {}

  /**
   * Settles once node job `id` was recorded finished ({@link recorded}), or is not waited for
   * any more ({@link processed}, {@link releaseAll}); never rejects.
   */
  after(id: string): Promise<void> {
    // An earlier attempt's wait, should one be left, has nothing to wait for any more.
    this.release(id);
    return new Promise((resolve) => this.pending.set(id, resolve));
  }

  /** Node job `id` was recorded completed or failed (the worker's events). */
  readonly recorded = (id: string | undefined): void => {
    if (id !== undefined && this.release(id)) {
      this.onHandoff('event');
    }
  };

  /**
   * The processor of node job `id` returned or threw: its recorded ending is due at once, unless
   * BullMQ records how it ended without an event (`byEvent` false: moved to delayed); then its
   * sandbox goes now.
   */
  processed(id: string, byEvent = true): void {
    const resolve = this.pending.get(id);
    if (resolve === undefined) {
      return;
    }
    if (!byEvent) {
      this.release(id);
      return;
    }
    setTimeout(() => {
      if (this.pending.get(id) === resolve && this.release(id)) {
        this.onHandoff('grace');
      }
    }, HANDOFF_GRACE_MS).unref();
  }

  /** Lets every waiting sandbox go: the node is closing. */
  releaseAll(): void {
    for (const id of [...this.pending.keys()]) {
      if (this.release(id)) {
        this.onHandoff('close');
      }
    }
  }

  /** Ends the wait for `id`; false when there was none. */
  private release(id: string): boolean {
    const resolve = this.pending.get(id);
    if (resolve === undefined) {
      return false;
    }
    this.pending.delete(id);
    resolve();
    return true;
  }
}
