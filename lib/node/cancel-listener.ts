/**
 * Cancel requests for the TaskInstances a node runs. A client asks in two ways at once: a key
 * (`cancelKey`) that outlives the request, for a job that reaches the node later, and a pub/sub
 * message, for a job running now. Each run gets its own AbortController here, so the abort
 * reason is a typed error (`TaskCancelledError`, `NodeShutdownError`) the node tells apart with
 * `instanceof` after the run, instead of a string given to BullMQ's `cancelJob`.
 */
import type { Redis } from 'ioredis';

import { NodeShutdownError, TaskCancelledError } from '../core/errors.js';
import type { Logger } from '../core/logger.js';
import { watchConnection } from '../redis/connection.js';
import { dropConnections } from '../redis/force-disconnect.js';
import { cancelChannel, cancelKey } from '../redis/keys.js';

export class CancelListener {
  private readonly running = new Map<string, AbortController>();
  private subscriber: Redis | undefined;

  constructor(
    private readonly redis: Redis,
    private readonly logger: Logger,
  ) {}

  /** Subscribes to cancel requests (on its own connection: a subscribed one can do nothing else). */
  async start(): Promise<void> {
    const subscriber = this.redis.duplicate();
    this.subscriber = subscriber;
    watchConnection(subscriber, this.logger, 'node cancel subscriber');
    subscriber.on('message', (_channel: string, instanceId: string) => {
      const controller = this.running.get(instanceId);
      if (controller !== undefined && !controller.signal.aborted) {
        this.logger.info({ instanceId }, 'cancelling a running TaskInstance on request');
        controller.abort(new TaskCancelledError(instanceId));
      }
    });
    await subscriber.subscribe(cancelChannel);
  }

  /** Whether a cancel was asked for the TaskInstance (maybe before it reached this node). */
  async requested(instanceId: string): Promise<boolean> {
    return (await this.redis.exists(cancelKey(instanceId))) === 1;
  }

  /** The signal that aborts this run on a cancel request or a forced shutdown; `release` when the run ends. */
  track(instanceId: string): { signal: AbortSignal; release: () => void } {
    const controller = new AbortController();
    this.running.set(instanceId, controller);
    return {
      signal: controller.signal,
      release: () => {
        if (this.running.get(instanceId) === controller) {
          this.running.delete(instanceId);
        }
      },
    };
  }

  /** Aborts every run with a `NodeShutdownError` (the drain timeout passed); returns how many. */
  abortAll(nodeId: string): number {
    for (const controller of this.running.values()) {
      controller.abort(new NodeShutdownError(nodeId));
    }
    return this.running.size;
  }

  async close(): Promise<void> {
    await this.subscriber?.quit().catch(() => this.subscriber?.disconnect());
  }

  /** Drops the subscriber's connection at once (a forced stop; see `force-disconnect.ts`). */
  dropConnection(): void {
    dropConnections([this.subscriber]);
  }
}
