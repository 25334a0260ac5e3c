/**
 * Hands split's units to the node's `onUnit` one at a time, in order, awaiting each. Units that
 * arrive meanwhile wait here; the sandbox is held back so that only a few do (the runner by
 * credits, a command by pausing its stdout), see `runSplit`.
 */
export interface UnitPumpHooks {
  onUnit(unit: unknown): void | Promise<void>;
  /** Called after each unit was taken by `onUnit` (its promise resolved). */
  onAck(): void;
  /** Called when the first unit waits (`true`) and when none is left (`false`). */
  onBusy(busy: boolean): void;
  /** `onUnit` threw or rejected: nothing more is delivered. */
  onError(error: unknown): void;
}

export class UnitPump {
  private readonly queue: unknown[] = [];
  private delivering = false;
  /** `onUnit` failed or `stop()` was called: nothing more is delivered. */
  private stopped = false;
  private idleWaiters: Array<() => void> = [];
  /** Units received so far. */
  received = 0;

  constructor(private readonly hooks: UnitPumpHooks) {}

  /** Units received and not yet taken by `onUnit` (the one it is busy with included). */
  get waiting(): number {
    return this.queue.length + (this.delivering ? 1 : 0);
  }

  push(unit: unknown): void {
    if (this.stopped) {
      return;
    }
    this.received += 1;
    this.queue.push(unit);
    if (!this.delivering) {
      this.delivering = true;
      this.hooks.onBusy(true);
      void this.deliver();
    }
  }

  /** Delivers nothing more: what waits is dropped; the unit `onUnit` is busy with still settles (`idle()`). */
  stop(): void {
    this.stopped = true;
    this.queue.length = 0;
  }

  /** Resolves once every unit received so far was taken (or delivery failed or stopped). */
  idle(): Promise<void> {
    return this.delivering ? new Promise((resolve) => this.idleWaiters.push(resolve)) : Promise.resolve();
  }

  private async deliver(): Promise<void> {
    for (let unit = this.queue.shift(); ; unit = this.queue.shift()) {
      try {
        await this.hooks.onUnit(unit);
      } catch (error) {
        if (!this.stopped) {
          this.stop();
          this.hooks.onError(error);
        }
        break;
      }
      if (this.stopped) {
        break;
      }
      this.hooks.onAck();
      if (this.queue.length === 0) {
        break;
      }
    }
    this.delivering = false;
    this.hooks.onBusy(false);
    this.idleWaiters.splice(0).forEach((resolve) => resolve());
  }
}
