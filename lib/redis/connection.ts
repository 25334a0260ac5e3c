/**
 * One place that turns a Redis URL into ioredis connections, so every component uses the same
 * settings, and one place that decides what happens while Redis cannot be reached.
 *
 * - Long-running roles (master, node, dashboard) use {@link createRedis}: commands wait out an
 *   outage (`maxRetriesPerRequest: null`, which BullMQ workers require), ioredis reconnects with
 *   backoff, and {@link watchConnection} logs each change of state once.
 * - The client uses {@link createBoundedRedis}: a caller must not wait for ever, so once Redis has
 *   been out of reach for `connectTimeoutMs` (at the first connect or after losing it) every
 *   pending and new command fails with a {@link RedisUnreachableError}, until Redis is back.
 * - A `redis-sentinel://` URL gives a Sentinel connection: ioredis asks the sentinels where the
 *   primary is at every (re)connect, so after a failover every connection, and every duplicate
 *   BullMQ makes of it (`duplicate()` copies the sentinel settings), finds the new primary.
 * - A `redis-cluster://` URL gives an ioredis `Cluster`, typed as a `Redis` for the rest of tydra:
 *   it answers the same commands, and every key tydra and BullMQ touch carries the namespace's
 *   hash tag (`keys.ts`), so each MULTI, pipeline and Lua script stays in one slot and is routed
 *   to the primary that serves it. What a Cluster cannot do with one namespace's keys, tydra does
 *   not ask: no SCAN or KEYS over the keyspace (the pruner walks its own ZSET and HASHes), and
 *   `WAIT` (`replication.ts`) goes to the namespace's primary.
 */
import { Cluster, type ClusterOptions, type Command, Redis, type RedisOptions } from 'ioredis';

import { RedisUnreachableError } from '../core/errors.js';
import type { Logger } from '../core/logger.js';
import { isClusterUrl, isSentinelUrl, parseClusterUrl, parseSentinelUrl } from '../core/redis-url.js';

/**
 * Settings of a Sentinel connection. Never give up asking the sentinels (the roles ride out
 * outages; the client's gate bounds its own waits), and reconnect at once when the primary has
 * been demoted under us: sentinels kill clients of a reconfigured server, but one that slipped
 * through gets `READONLY` errors until it reconnects and asks the sentinels again.
 */
const SENTINEL_OPTIONS: RedisOptions = {
  sentinelRetryStrategy: (attempt: number) => Math.min(attempt * 100, 2000),
  // Not `failoverDetector`: its subscriptions to the sentinels outlive a `quit()` (ioredis 5.11
  // closes them only on `disconnect()`) and keep retrying for ever. Without it a connection to a
  // dead primary reconnects by its retry strategy, asking the sentinels anew each time.
  reconnectOnError: (error: Error) => (error.message.startsWith('READONLY') ? 2 : false),
  enableOfflineQueue: true,
};

/**
 * Settings of a Cluster connection: ask the seed nodes again with backoff for ever (as a single
 * Redis reconnects), and queue commands while the slot map is being learnt or refreshed.
 */
const CLUSTER_OPTIONS: ClusterOptions = {
  clusterRetryStrategy: (attempt: number) => Math.min(attempt * 100, 2000),
  enableOfflineQueue: true,
  enableReadyCheck: true,
};

export function createRedis(url: string, options: RedisOptions = {}): Redis {
  const common: RedisOptions = { maxRetriesPerRequest: null, lazyConnect: false, ...options };
  if (isClusterUrl(url)) {
    const { nodes, username, password } = parseClusterUrl(url);
    const { lazyConnect, ...redisOptions } = common;
    const cluster = new Cluster(nodes, {
      ...CLUSTER_OPTIONS,
      lazyConnect: lazyConnect ?? false,
      // BullMQ reads `redisOptions.maxRetriesPerRequest` of a Cluster (null for its workers).
      redisOptions: { ...redisOptions, username, password },
    });
    // Typed as a Redis: see the header. Code that must tell them apart checks `isCluster`.
    return cluster as unknown as Redis;
  }
  if (!isSentinelUrl(url)) {
    return withoutStaleDisconnectTimer(new Redis(url, common));
  }
  const { sentinels, name, username, password, db } = parseSentinelUrl(url);
  return withoutStaleDisconnectTimer(
    new Redis({ sentinels, name, username, password, db, ...SENTINEL_OPTIONS, ...common }),
  );
}

/** What ioredis keeps private: the connector that holds the socket of the latest connect. */
interface ConnectorHolder {
  connector?: { stream?: { closed?: boolean }; disconnect(): void };
}

/**
 * Returns `redis`, changed so that a disconnect leaves no timer behind. ioredis 5.11's
 * `disconnect()` ends the connector's last socket and arms a `disconnectTimeout` timer (2 s) to
 * destroy it, cleared by that socket's `close` event. A socket that closed already (Redis refused
 * or dropped it, and ioredis is waiting to reconnect) never emits it again, so each disconnect of a
 * connection that cannot reach Redis held the process for 2 s more: `tydra nodes` with Redis
 * down exited 2 s after its error. Forgetting a closed socket skips the timer, and nothing else
 * reads it before the next connect replaces it. Also for `duplicate()`s of a connection, which
 * ioredis builds without this function.
 */
export function withoutStaleDisconnectTimer(redis: Redis): Redis {
  const connector = (redis as unknown as ConnectorHolder).connector;
  if (connector === undefined) {
    return redis;
  }
  const disconnect = connector.disconnect.bind(connector);
  connector.disconnect = () => {
    if (connector.stream?.closed === true) {
      connector.stream = undefined;
    }
    disconnect();
  };
  return redis;
}

export { redactRedisUrl } from './url.js';

/**
 * `127.0.0.1:6379 (no password)`, or `Sentinel master mymaster via 10.0.0.1:26379,10.0.0.2:26379
 * (with password)`: where a connection goes, safe for messages.
 */
export function describeRedisTarget(redis: Redis): string {
  if (redis.isCluster) {
    const cluster = redis as unknown as {
      startupNodes: Array<{ host?: string; port?: number }>;
      options: ClusterOptions;
    };
    const seeds = cluster.startupNodes.map((node) => `${node.host ?? '127.0.0.1'}:${node.port ?? 6379}`).join(',');
    return `Redis Cluster via ${seeds} (${cluster.options.redisOptions?.password ? 'with' : 'no'} password)`;
  }
  const { host, port, password, sentinels, name } = redis.options;
  const secret = `(${password ? 'with' : 'no'} password)`;
  if (sentinels !== undefined && sentinels !== null && sentinels.length > 0) {
    const via = sentinels.map((sentinel) => `${sentinel.host ?? 'localhost'}:${sentinel.port ?? 26379}`).join(',');
    return `Sentinel master ${name ?? 'mymaster'} via ${via} ${secret}`;
  }
  return `${host ?? '127.0.0.1'}:${port ?? 6379} ${secret}`;
}

/** What ioredis keeps private but lets us reject: its offline queue and the commands in flight. */
interface FlushableRedis {
  flushQueue?(error: Error): void;
  /** A Cluster's queue of commands waiting for the slot map (it has no `flushQueue`). */
  offlineQueue?: { length: number; shift(): { command: Command } | undefined };
}

/** Rejects every command `redis` (a Redis or a Cluster) still holds with `error`. */
function rejectPending(redis: Redis, error: Error): void {
  const flushable = redis as unknown as FlushableRedis;
  if (flushable.flushQueue !== undefined) {
    flushable.flushQueue(error);
    return;
  }
  for (let item = flushable.offlineQueue?.shift(); item !== undefined; item = flushable.offlineQueue?.shift()) {
    item.command.reject(error);
  }
}

/**
 * Fails commands once Redis has been unreachable for `timeoutMs`, and lets them through again
 * when it is back. The deadline starts at creation and again whenever the connection is lost.
 */
class ConnectionGate {
  /** Set once the deadline passed without a connection; cleared on `ready`. */
  private unreachable: RedisUnreachableError | undefined;
  private reason: string;
  private timer: NodeJS.Timeout | undefined;
  private readonly waiters = new Set<(error?: Error) => void>();

  constructor(
    private readonly redis: Redis,
    private readonly timeoutMs: number,
  ) {
    this.reason = this.noAnswer();
    redis.on('error', (error: Error) => {
      this.reason = error.message;
    });
    redis.on('ready', () => this.reached());
    redis.on('close', () => this.arm());
    redis.on('end', () => this.disarm(new RedisUnreachableError(describeRedisTarget(redis), 'connection closed')));
    const send = redis.sendCommand.bind(redis);
    // `...rest`: a Cluster's sendCommand takes the node as a third argument.
    redis.sendCommand = (command: Command, ...rest: unknown[]) => {
      // `connect` is the handshake after a TCP connect (ready check, AUTH): let it through.
      if (this.unreachable !== undefined && redis.status !== 'connect' && command.name !== 'quit') {
        command.reject(this.unreachable);
        return command.promise;
      }
      return (send as (command: Command, ...rest: unknown[]) => unknown)(command, ...rest);
    };
    this.arm();
  }

  /** Resolves when connected; rejects once the deadline has passed without a connection. */
  reachable(): Promise<void> {
    if (this.redis.status === 'ready') {
      return Promise.resolve();
    }
    if (this.unreachable !== undefined) {
      return Promise.reject(this.unreachable);
    }
    return new Promise((resolve, reject) => {
      this.waiters.add((error) => (error === undefined ? resolve() : reject(error)));
    });
  }

  private arm(): void {
    if (this.timer !== undefined || this.unreachable !== undefined || this.redis.status === 'end') {
      return;
    }
    this.timer = setTimeout(() => {
      this.timer = undefined;
      const error = new RedisUnreachableError(describeRedisTarget(this.redis), this.reason);
      this.unreachable = error;
      rejectPending(this.redis, error);
      this.settle(error);
    }, this.timeoutMs);
    this.timer.unref();
  }

  private reached(): void {
    this.disarm(undefined);
    this.unreachable = undefined;
    this.reason = this.noAnswer();
  }

  private disarm(error: Error | undefined): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    this.settle(error);
  }

  private settle(error: Error | undefined): void {
    for (const waiter of this.waiters) {
      waiter(error);
    }
    this.waiters.clear();
  }

  private noAnswer(): string {
    return `no answer within ${this.timeoutMs} ms`;
  }
}

const gates = new WeakMap<Redis, ConnectionGate>();

/**
 * A connection for callers that must not wait for ever (the client, CLI commands): once Redis has
 * been out of reach for `connectTimeoutMs`, pending and new commands reject with
 * `could not reach Redis at host:port (no password): <reason>` until it answers again.
 * Not for BullMQ workers or `QueueEvents`, whose blocking commands must ride out an outage.
 */
export function createBoundedRedis(url: string, connectTimeoutMs: number): Redis {
  const redis = createRedis(url);
  gates.set(redis, new ConnectionGate(redis, connectTimeoutMs));
  return redis;
}

/**
 * Resolves once `redis` (made by {@link createBoundedRedis}) is connected, or rejects with a
 * {@link RedisUnreachableError} when it has been out of reach for its connect timeout. For waits
 * that are not commands, such as a BullMQ `waitUntilReady()`.
 */
export function whenReachable(redis: Redis): Promise<void> {
  return gates.get(redis)?.reachable() ?? Promise.resolve();
}

/**
 * BullMQ `Queue` options for a queue on a bounded connection: BullMQ would otherwise wait for the
 * connection's `ready` event (for ever, if Redis is down) before its first command. Skipping that
 * wait leaves every step to commands, which the connection bounds.
 */
export const BOUNDED_QUEUE_OPTIONS = { skipWaitingForReady: true, skipVersionCheck: true } as const;

/**
 * Logs a long-running role's connection state once per change (cannot connect yet → connected,
 * connected → lost → reconnected), instead of once per retry. `what` names the connection in
 * the messages (`master`, `node cancel subscriber`, …). Also keeps ioredis from printing
 * "Unhandled error event".
 */
export function watchConnection(redis: Redis, logger: Logger, what: string): void {
  const target = describeRedisTarget(redis);
  let state: 'connecting' | 'waiting' | 'connected' | 'lost' = 'connecting';
  let since = Date.now();
  redis.on('error', (error: Error) => {
    if (state === 'connecting') {
      state = 'waiting';
      logger.warn({ target, err: error.message }, `${what}: cannot reach Redis yet; retrying`);
    }
  });
  redis.on('ready', () => {
    if (state === 'lost' || state === 'waiting') {
      logger.info({ target, downMs: Date.now() - since }, `${what}: connected to Redis again`);
    }
    state = 'connected';
  });
  // `reconnecting`, not `close`: a connection closed on purpose (quit) does not reconnect.
  redis.on('reconnecting', () => {
    if (state === 'connected') {
      state = 'lost';
      since = Date.now();
      logger.warn({ target }, `${what}: lost the connection to Redis; retrying`);
    }
  });
}

const CONNECTION_ERROR_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EPIPE',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENOTFOUND',
  'EAI_AGAIN',
]);

/** Whether `error` only says that Redis is out of reach (what {@link watchConnection} reports). */
export function isConnectionError(error: Error): boolean {
  return (
    error instanceof RedisUnreachableError ||
    CONNECTION_ERROR_CODES.has((error as NodeJS.ErrnoException).code ?? '') ||
    error.message === 'Connection is closed.'
  );
}

/**
 * Passes an emitter's `error` events to `log`, except connection errors: BullMQ re-emits those on
 * every Queue and Worker at each retry, and {@link watchConnection} already reports the outage.
 */
export function logErrors(
  emitter: { on(event: 'error', listener: (error: Error) => void): unknown },
  log: (error: Error) => void,
): void {
  emitter.on('error', (error: Error) => {
    if (!isConnectionError(error)) {
      log(error);
    }
  });
}
