/**
 * A Sentinel deployment on loopback for tests: one primary, one replica and three sentinels, each
 * a `redis-server` child of this process on a free port, all stopped after the test (`defer`).
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';

import { execa, type ResultPromise } from 'execa';
import { Redis } from 'ioredis';

import { freePort } from '../lib/ops/redis-server.js';
import { defer, tempDir, waitFor } from './helpers.js';

export const MASTER_NAME = 'mymaster';

export interface SentinelDeployment {
  /** `redis-sentinel://127.0.0.1:A,127.0.0.1:B,127.0.0.1:C#mymaster` (no sentinels: `redis://` of the primary) */
  url: string;
  /** Ports of the first primary and its replica. */
  primary: number;
  replica: number;
  /** Sends `signal` to the redis-server on `port` (SIGSTOP a replica so it stops acknowledging, say). */
  signal(port: number, signal: NodeJS.Signals): void;
  /** Port of the current primary, as the sentinels report it. */
  primaryPort(): Promise<number>;
  /** SIGKILLs the redis-server listening on `port` (the primary, say) and waits for it to exit. */
  kill(port: number): Promise<void>;
  /** Waits until the sentinels name a primary other than `port` (the failover is done). */
  failedOver(port: number, timeoutMs?: number): Promise<number>;
  /** A plain connection to the server on `port`, closed after the test. */
  connect(port: number): Redis;
}

/**
 * Starts the deployment and waits until the replica is in sync and every sentinel knows the
 * replica and the other two sentinels. With `sentinels: 0`, a primary and its replica only.
 */
export async function startSentinelDeployment({
  sentinels: count = 3,
  password,
}: { sentinels?: number; password?: string } = {}): Promise<SentinelDeployment> {
  const dir = await tempDir('tydra-sentinel-');
  const servers = new Map<number, ResultPromise>();
  const start = (args: string[], port: number): void => {
    const child = execa('redis-server', args, { reject: false, stdio: 'ignore', cleanup: true });
    servers.set(port, child);
    defer(async () => {
      child.kill('SIGKILL');
      await child;
    });
  };
  const sentinels: number[] = [];
  const connect = (port: number): Redis => {
    // The primary and replica want the password; the sentinels take none.
    const auth = password !== undefined && !sentinels.includes(port) ? { password } : {};
    const redis = new Redis({ host: '127.0.0.1', port, lazyConnect: false, maxRetriesPerRequest: 1, ...auth });
    redis.on('error', () => undefined);
    defer(() => Promise.resolve(redis.disconnect()));
    return redis;
  };

  const primary = await freePort();
  start(serverArgs(primary, dir, password), primary);
  const replica = await freePort();
  start([...serverArgs(replica, dir, password), '--replicaof', '127.0.0.1', String(primary)], replica);
  const replicaConnection = connect(replica);
  await waitFor('the replica to sync', async () =>
    /master_link_status:up/.test(await replicaConnection.info('replication').catch(() => '')) ? true : undefined,
  );

  for (let i = 0; i < count; i += 1) {
    const port = await freePort();
    const config = join(dir, `sentinel-${port}.conf`);
    await writeFile(config, sentinelConfig(port, primary, dir, password));
    start([config, '--sentinel'], port);
    sentinels.push(port);
  }
  const sentinelConnections = sentinels.map(connect);
  // Sentinels find each other through hello messages every 2 s, and the replica through INFO.
  await waitFor(
    'the sentinels to know the replica and each other',
    async () => {
      for (const sentinel of sentinelConnections) {
        const known = await Promise.all([
          sentinel.call('SENTINEL', 'REPLICAS', MASTER_NAME).catch(() => []),
          sentinel.call('SENTINEL', 'SENTINELS', MASTER_NAME).catch(() => []),
        ]);
        if ((known[0] as unknown[]).length < 1 || (known[1] as unknown[]).length < 2) {
          return undefined;
        }
      }
      return true;
    },
    20_000,
  );

  const primaryPort = async (): Promise<number> => {
    for (const sentinel of sentinelConnections) {
      const address = (await sentinel.call('SENTINEL', 'GET-MASTER-ADDR-BY-NAME', MASTER_NAME).catch(() => null)) as
        [string, string] | null;
      if (address !== null) {
        return Number(address[1]);
      }
    }
    throw new Error('no sentinel answered GET-MASTER-ADDR-BY-NAME');
  };
  return {
    url:
      count === 0
        ? `redis://127.0.0.1:${primary}`
        : `redis-sentinel://${sentinels.map((port) => `127.0.0.1:${port}`).join(',')}#${MASTER_NAME}`,
    primary,
    replica,
    signal: (port, signal) => void servers.get(port)?.kill(signal),
    primaryPort,
    connect,
    kill: async (port) => {
      const child = servers.get(port);
      child?.kill('SIGKILL');
      await child;
    },
    failedOver: (port, timeoutMs = 20_000) =>
      waitFor(
        `the sentinels to promote a new primary instead of port ${port}`,
        async () => {
          const now = await primaryPort().catch(() => port);
          return now === port ? undefined : now;
        },
        timeoutMs,
      ),
  };
}

function serverArgs(port: number, dir: string, password: string | undefined): string[] {
  return [
    ...(password === undefined ? [] : ['--requirepass', password, '--masterauth', password]),
    ...['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--dbfilename', `dump-${port}.rdb`],
    ...['--save', '', '--appendonly', 'no', '--maxmemory-policy', 'noeviction', '--daemonize', 'no'],
  ];
}

function sentinelConfig(port: number, primary: number, dir: string, password: string | undefined): string {
  return [
    `port ${port}`,
    'bind 127.0.0.1',
    `dir ${dir}`,
    `sentinel monitor ${MASTER_NAME} 127.0.0.1 ${primary} 2`,
    `sentinel down-after-milliseconds ${MASTER_NAME} 1000`,
    `sentinel failover-timeout ${MASTER_NAME} 5000`,
    `sentinel parallel-syncs ${MASTER_NAME} 1`,
    ...(password === undefined ? [] : [`sentinel auth-pass ${MASTER_NAME} ${password}`]),
    '',
  ].join('\n');
}
