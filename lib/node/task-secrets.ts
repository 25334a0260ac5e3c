/**
 * The secrets of one TaskInstance, opened on the node just before its sandbox starts: the
 * task's declared names (each the stored secret of its own name) under the mapping its
 * submission recorded. A node without the key, or a secret gone since the submit, refuses the
 * TaskInstance (`SecretUnavailableError`: rejected, not retried). The values live only in this
 * process and in the runner's `start` message.
 */
import type { Redis } from 'ioredis';

import { SecretUnavailableError } from '../core/errors.js';
import { openSecret, type SecretMapping, secretMappingOf } from '../core/secret-box.js';
import type { Keyspace } from '../redis/keys.js';
import { readSealedSecrets } from '../redis/secret-commands.js';

/** Environment variable → clear value; empty when the TaskInstance needs no secrets. */
export async function openTaskSecrets(
  redis: Redis,
  keys: Keyspace,
  key: Buffer | undefined,
  nodeId: string,
  declared: readonly string[] | undefined,
  given: SecretMapping | undefined,
): Promise<Record<string, string>> {
  const entries = Object.entries(secretMappingOf(declared, given));
  if (entries.length === 0) {
    return {};
  }
  if (key === undefined) {
    throw new SecretUnavailableError(
      `Expected node ${nodeId} to have a secret key (TYDRA_SECRET_KEY or --secret-key-file) to give this TaskInstance its secrets (${entries.map(([, name]) => name).join(', ')}), got none`,
    );
  }
  const sealed = await readSealedSecrets(
    redis,
    keys,
    entries.map(([, name]) => name),
  );
  const env: Record<string, string> = {};
  entries.forEach(([envName, name], i) => {
    const value = sealed[i];
    if (value === null || value === undefined) {
      throw new SecretUnavailableError(
        `Expected secret ${name} to be stored (for ${envName}), got none: it was removed`,
      );
    }
    env[envName] = openSecret(key, name, value);
  });
  return env;
}
