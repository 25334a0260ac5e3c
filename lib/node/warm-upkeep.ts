/**
 * What the node's warm pool learns from Redis at each heartbeat: whether an operator marked the
 * node draining (the pool stops its sandboxes and starts none), and which of its warm versions
 * were undeployed (their sandboxes stop). One pipelined round trip; a version evicted or pruned
 * from the cache is drained at once by the cache itself (`PackageCache.onRemove`).
 */
import type { Redis } from 'ioredis';

import type { Keyspace } from '../redis/keys.js';
import type { WarmPool } from './warm-pool.js';

export async function upkeepWarmPool(redis: Redis, keys: Keyspace, nodeId: string, pool: WarmPool): Promise<void> {
  const versions = pool.warmVersions().map((version) => {
    const at = version.lastIndexOf('@');
    return { name: version.slice(0, at), sha1: version.slice(at + 1) };
  });
  const pipeline = redis.pipeline().hget(keys.nodeInfo(nodeId), 'draining');
  for (const { name, sha1 } of versions) {
    pipeline.sismember(keys.packageUndeployed(name), sha1);
  }
  const replies = (await pipeline.exec()) ?? [];
  pool.pause(replies[0]?.[1] === '1');
  versions.forEach(({ name, sha1 }, index) => {
    if (replies[index + 1]?.[1] === 1) {
      pool.drainVersion(name, sha1);
    }
  });
}
