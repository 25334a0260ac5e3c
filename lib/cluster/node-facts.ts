/**
 * What a node publishes about itself with each heartbeat beyond its description: how it confines
 * task processes and what its package cache holds. Fields of its `tydra:node:<id>` hash, added to
 * the heartbeat's write (one HSET, no extra round trip) and read back by the registry's `list`;
 * a node of a version that did not publish them reads as undefined, not as zero.
 */
import { formatBytes } from '../core/limit-values.js';

/**
 * How a node confines each sandbox: bubblewrap plus per-TaskInstance cgroups (v2 or v1), bubblewrap
 * with rlimits only (no usable cgroups: memory by address space, processes by the wall clock), or no
 * sandbox at all (`--unsafe-no-sandbox`, development only).
 */
export type SandboxMode = 'cgroup-v2' | 'cgroup-v1' | 'rlimits' | 'unsandboxed';

const SANDBOX_MODES: readonly SandboxMode[] = ['cgroup-v2', 'cgroup-v1', 'rlimits', 'unsandboxed'];

export interface NodeFacts {
  sandbox: SandboxMode;
  /** Package versions extracted in its cache. */
  cachedVersions: number;
  /** Bytes of their extracted files. */
  cachedBytes: number;
  /**
   * Whether it holds a secret key (`TYDRA_SECRET_KEY`, `--secret-key-file`): the masters send a
   * TaskInstance that needs secrets only to nodes that do, when there are any. Never the key.
   */
  secretKey: boolean;
}

/** The hash fields of `facts`, as the heartbeat writes them. */
export function nodeFactsFields(facts: NodeFacts): Record<string, string> {
  return {
    sandbox: facts.sandbox,
    cachedVersions: String(facts.cachedVersions),
    cachedBytes: String(facts.cachedBytes),
    secretKey: facts.secretKey ? '1' : '0',
  };
}

const count = (raw: string | undefined): number | undefined => {
  const value = raw === undefined ? Number.NaN : Number(raw);
  return Number.isSafeInteger(value) && value >= 0 ? value : undefined;
};

/** The facts in a node's hash; each one undefined when absent or not what a node writes. */
export function readNodeFacts(raw: Record<string, string>): Partial<NodeFacts> {
  const sandbox = SANDBOX_MODES.find((mode) => mode === raw.sandbox);
  const cachedVersions = count(raw.cachedVersions);
  const cachedBytes = count(raw.cachedBytes);
  const secretKey = raw.secretKey === '1' ? true : raw.secretKey === '0' ? false : undefined;
  return {
    ...(sandbox === undefined ? {} : { sandbox }),
    ...(cachedVersions === undefined ? {} : { cachedVersions }),
    ...(cachedBytes === undefined ? {} : { cachedBytes }),
    ...(secretKey === undefined ? {} : { secretKey }),
  };
}

/** `yes`, `no`, or `?` for a node that did not publish it: whether a node holds a secret key. */
export function secretKeyInWords(facts: Partial<NodeFacts>): string {
  return facts.secretKey === undefined ? '?' : facts.secretKey ? 'yes' : 'no';
}

/** `3 versions, 1.2 MiB`, as `tydra nodes` and the Nodes page show a node's cache; `?` when unpublished. */
export function cacheInWords(facts: Partial<NodeFacts>): string {
  if (facts.cachedVersions === undefined || facts.cachedBytes === undefined) {
    return '?';
  }
  const versions = `${facts.cachedVersions} version${facts.cachedVersions === 1 ? '' : 's'}`;
  return `${versions}, ${formatBytes(facts.cachedBytes)}`;
}

/**
 * A node's warm pool (`lib/node/warm-pool.ts`) as its last heartbeat published it, in words; `-`
 * for a node that is not alive (stopped, late or dead), whose last published pool is gone or stale.
 */
export function poolInWords(node: {
  alive: boolean;
  pool?: { size: number; max: number; hits: number; misses: number } | undefined;
}): string {
  const { pool } = node;
  if (!node.alive) {
    return '-';
  }
  if (pool === undefined) {
    return 'unknown';
  }
  if (pool.max === 0) {
    return 'off';
  }
  const claims = pool.hits + pool.misses;
  const rate = claims === 0 ? '' : ` (${Math.round((100 * pool.hits) / claims)}% hits)`;
  return `${pool.size}/${pool.max}, ${pool.hits} hits, ${pool.misses} misses${rate}`;
}
