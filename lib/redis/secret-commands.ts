/**
 * The stored secrets: `{NAME}:secrets` (name → sealed value) and `{NAME}:secrets:set-at`
 * (name → when set). Only sealed values pass through here; sealing and opening are
 * `lib/core/secret-box.ts`, done by whoever holds the key.
 */
import type { Redis } from 'ioredis';

import type { Keyspace } from './keys.js';

/** A stored secret as listings show it: its name and when it was set, never its value. */
export interface SecretInfo {
  name: string;
  /** When it was last set (ms since the epoch). */
  setAt: number;
}

/** Stores (or replaces) the sealed value of `name`. */
export async function putSealedSecret(
  redis: Redis,
  keys: Keyspace,
  name: string,
  sealed: string,
  at: number,
): Promise<void> {
  await redis.multi().hset(keys.secrets, name, sealed).hset(keys.secretsSetAt, name, String(at)).exec();
}

/** Every stored secret, by name. */
export async function listSecretInfos(redis: Redis, keys: Keyspace): Promise<SecretInfo[]> {
  const [names, setAt] = await Promise.all([redis.hkeys(keys.secrets), redis.hgetall(keys.secretsSetAt)]);
  return names.sort().map((name) => ({ name, setAt: Number(setAt[name] ?? 0) }));
}

/** Removes `name`; false when there was none. */
export async function deleteSecret(redis: Redis, keys: Keyspace, name: string): Promise<boolean> {
  const results = await redis.multi().hdel(keys.secrets, name).hdel(keys.secretsSetAt, name).exec();
  return Number(results?.[0]?.[1] ?? 0) > 0;
}

/** The names among `names` that are not stored (HEXISTS each). */
export async function missingSecrets(redis: Redis, keys: Keyspace, names: readonly string[]): Promise<string[]> {
  const exists = await Promise.all(names.map((name) => redis.hexists(keys.secrets, name)));
  return names.filter((_, i) => exists[i] !== 1);
}

/** The sealed values of `names`, in order; `null` for a name not stored. */
export async function readSealedSecrets(
  redis: Redis,
  keys: Keyspace,
  names: readonly string[],
): Promise<Array<string | null>> {
  return names.length === 0 ? [] : redis.hmget(keys.secrets, ...names);
}
