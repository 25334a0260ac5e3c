/**
 * A Redis Cluster on loopback for tests: three primaries (no replicas), each a `redis-server
 * --cluster-enabled yes` child of this process on free ports, joined by `redis-cli --cluster
 * create`, all stopped after the test (`defer`).
 */
import { join } from 'node:path';

import { execa, type ResultPromise } from 'execa';
import { Redis } from 'ioredis';

import { freePort } from '../lib/ops/redis-server.js';
import { defer, tempDir, waitFor } from './helpers.js';

export interface RedisClusterDeployment {
  /** `redis-cluster://127.0.0.1:A,127.0.0.1:B,127.0.0.1:C` */
  url: string;
  /** The primaries' ports. */
  ports: number[];
  /** Port of the primary serving the hash slot of `key` (asked of the cluster: CLUSTER KEYSLOT, CLUSTER SHARDS). */
  primaryOf(key: string): Promise<number>;
  /** A plain (non-cluster) connection to the server on `port`, closed after the test. */
  connect(port: number): Redis;
}

const PRIMARIES = 3;

/** Starts three primaries, creates the cluster and waits until every node says `cluster_state:ok`. */
export async function startRedisCluster(): Promise<RedisClusterDeployment> {
  const dir = await tempDir('tydra-cluster-');
  const connect = (port: number): Redis => {
    const redis = new Redis({ host: '127.0.0.1', port, lazyConnect: false, maxRetriesPerRequest: 1 });
    redis.on('error', () => undefined);
    defer(() => Promise.resolve(redis.disconnect()));
    return redis;
  };
  const ports: number[] = [];
  for (let i = 0; i < PRIMARIES; i += 1) {
    const port = await freePort();
    // The cluster bus port too: the default (port + 10000) may be taken or past 65535.
    const busPort = await freePort();
    start(serverArgs(port, busPort, dir));
    ports.push(port);
  }
  const connections = ports.map(connect);
  await waitFor('the cluster nodes to answer', async () =>
    (await Promise.all(connections.map((redis) => redis.ping().catch(() => '')))).every((pong) => pong === 'PONG')
      ? true
      : undefined,
  );
  await execa('redis-cli', ['--cluster', 'create', ...ports.map((port) => `127.0.0.1:${port}`), '--cluster-yes'], {
    stdio: 'ignore',
  });
  await waitFor(
    'every node to say cluster_state:ok',
    async () => {
      const infos = await Promise.all(connections.map((redis) => redis.cluster('INFO').catch(() => '')));
      return infos.every((info) => /cluster_state:ok/.test(String(info))) ? true : undefined;
    },
    20_000,
  );
  const first = connections[0] as Redis;
  return {
    url: `redis-cluster://${ports.map((port) => `127.0.0.1:${port}`).join(',')}`,
    ports,
    connect,
    primaryOf: async (key) => {
      const slot = Number(await first.cluster('KEYSLOT', key));
      return primaryOfSlot(first, slot);
    },
  };
}

function start(args: string[]): void {
  const child: ResultPromise = execa('redis-server', args, { reject: false, stdio: 'ignore', cleanup: true });
  defer(async () => {
    child.kill('SIGKILL');
    await child;
  });
}

function serverArgs(port: number, busPort: number, dir: string): string[] {
  return [
    ...['--port', String(port), '--cluster-port', String(busPort), '--bind', '127.0.0.1', '--dir', dir],
    ...['--cluster-enabled', 'yes', '--cluster-config-file', join(dir, `nodes-${port}.conf`)],
    ...['--save', '', '--appendonly', 'no', '--maxmemory-policy', 'noeviction', '--daemonize', 'no'],
  ];
}

/** CLUSTER SHARDS: for each shard its `slots` (flat start/end pairs) and its `nodes` (each a flat field/value list). */
async function primaryOfSlot(redis: Redis, slot: number): Promise<number> {
  const shards = (await redis.call('CLUSTER', 'SHARDS')) as unknown[][];
  for (const shard of shards) {
    const fields = toMap(shard);
    const ranges = (fields.get('slots') ?? []) as number[];
    for (let i = 0; i < ranges.length; i += 2) {
      if (slot >= Number(ranges[i]) && slot <= Number(ranges[i + 1])) {
        const nodes = ((fields.get('nodes') ?? []) as unknown[][]).map(toMap);
        const primary = nodes.find((node) => node.get('role') === 'master');
        return Number(primary?.get('port'));
      }
    }
  }
  throw new Error(`no shard of the cluster serves slot ${slot}`);
}

function toMap(flat: unknown[]): Map<string, unknown> {
  const map = new Map<string, unknown>();
  for (let i = 0; i < flat.length; i += 2) {
    map.set(String(flat[i]), flat[i + 1]);
  }
  return map;
}
