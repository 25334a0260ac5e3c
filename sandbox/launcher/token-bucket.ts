/**
 * A token bucket that may owe one token: `take()` always takes, and says how long to wait before
 * the next take so that, over time, no more than `perSecond` are taken (`stream-capture.ts` holds
 * a runner's progress messages to it).
 */
export class TokenBucket {
  private tokens: number;
  private at: number;

  constructor(
    private readonly burst: number,
    private readonly perSecond: number,
    private readonly now: () => number = () => performance.now(),
  ) {
    this.tokens = burst;
    this.at = now();
  }

  /** True when a token is there to take now. */
  get available(): boolean {
    this.refill();
    return this.tokens >= 1;
  }

  /** Takes a token, owing it when there is none; returns the milliseconds until the debt is repaid (0: none). */
  take(): number {
    this.refill();
    this.tokens -= 1;
    return this.tokens >= 0 ? 0 : Math.ceil((-this.tokens * 1000) / this.perSecond);
  }

  private refill(): void {
    const now = this.now();
    this.tokens = Math.min(this.burst, this.tokens + ((now - this.at) * this.perSecond) / 1000);
    this.at = now;
  }
}
