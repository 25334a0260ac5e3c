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
import type { Keyspace } from '../redis/keys.js';

export class CancelListener {
  /** Every run of an instance here: its node job, and its work sandboxes when it is parallel. */
  private readonly running = new Map<string, Set<AbortController>>();
  private subscriber: Redis | undefined;
  private readonly unitStops = new Set<(instanceId: string) => void>();

  constructor(
    private readonly redis: Redis,
    private readonly keys: Keyspace,
    private readonly logger: Logger,
  ) {}

  /** Subscribes to cancel requests (on its own connection: a subscribed one can do nothing else). */
  async start(): Promise<void> {
    const subscriber = this.redis.duplicate();
    this.subscriber = subscriber;
    watchConnection(subscriber, this.logger, 'node cancel subscriber');
    subscriber.on('message', (channel: string, instanceId: string) => {
      if (channel === this.keys.parallelAbortChannel) {
        this.unitStops.forEach((stop) => stop(instanceId));
        return;
      }
      const controllers = [...(this.running.get(instanceId) ?? [])].filter(({ signal }) => !signal.aborted);
      if (controllers.length > 0) {
        this.logger.info({ instanceId }, 'cancelling a running TaskInstance on request');
        controllers.forEach((controller) => controller.abort(new TaskCancelledError(instanceId)));
      }
    });
    await subscriber.subscribe(this.keys.cancelChannel, this.keys.parallelAbortChannel);
  }

  /** Calls `stop` with the id of each parallel TaskInstance whose workunits must stop (see `parallel-stop.ts`). */
  onUnitsStop(stop: (instanceId: string) => void): void {
    this.unitStops.add(stop);
  }

  /** Whether a cancel was asked for the TaskInstance (maybe before it reached this node). */
  async requested(instanceId: string): Promise<boolean> {
    return (await this.redis.exists(this.keys.cancel(instanceId))) === 1;
  }

  /**
   * The signal that aborts this run on a cancel request or a forced shutdown, and `abort` for the
   * node's own reasons (see `task-execution.ts`); `release` when the run ends.
   */
  track(instanceId: string): { signal: AbortSignal; abort: (reason: Error) => void; release: () => void } {
    const controller = new AbortController();
    const runs = this.running.get(instanceId) ?? new Set<AbortController>();
    runs.add(controller);
    this.running.set(instanceId, runs);
    return {
      signal: controller.signal,
      abort: (reason) => controller.abort(reason),
      release: () => {
        runs.delete(controller);
        if (runs.size === 0 && this.running.get(instanceId) === runs) {
          this.running.delete(instanceId);
        }
      },
    };
  }

  /** Aborts every run with a `NodeShutdownError` (the drain timeout passed); returns how many. */
  abortAll(nodeId: string): number {
    let count = 0;
    for (const runs of this.running.values()) {
      for (const controller of runs) {
        controller.abort(new NodeShutdownError(nodeId));
        count += 1;
      }
    }
    return count;
  }

  async close(): Promise<void> {
    await this.subscriber?.quit().catch(() => this.subscriber?.disconnect());
  }

  /** Drops the subscriber's connection at once (a forced stop; see `force-disconnect.ts`). */
  dropConnection(): void {
    dropConnections([this.subscriber]);
  }
}
