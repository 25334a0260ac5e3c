/**
 * Split's wall-clock limit: it counts only the time split runs on its own, not the time the node
 * holds it back. Re-armed at each unit (a fresh `timeoutMs` per unit), held while the node is
 * still busy with the units it has, so a slow queue never times a healthy split out.
 */
export class PausableTimer {
  private timer: NodeJS.Timeout | undefined;
  private held = false;
  private done = false;

  constructor(
    private readonly ms: number,
    private readonly onFire: () => void,
  ) {}

  /** Starts a fresh period, unless held or disposed. */
  arm(): void {
    this.clearTimer();
    if (!this.held && !this.done) {
      this.timer = setTimeout(() => {
        this.done = true;
        this.onFire();
      }, this.ms);
    }
  }

  /** Stops counting until `release`. */
  hold(): void {
    this.held = true;
    this.clearTimer();
  }

  /** Counts again, from a fresh period. */
  release(): void {
    this.held = false;
    this.arm();
  }

  /** Never fires again. */
  dispose(): void {
    this.done = true;
    this.clearTimer();
  }

  private clearTimer(): void {
    if (this.timer !== undefined) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
  }
}
