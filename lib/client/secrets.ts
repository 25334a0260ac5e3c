/**
 * Secrets on the client's side: `setSecret` seals a value with the client's key before it
 * leaves the process; a submit checks that every stored secret its TaskInstance maps to exists.
 * Values are never logged and never put in an error message.
 */
import type { Redis } from 'ioredis';

import type { Keyspace } from '../redis/keys.js';

import { InvalidOptionError, UnknownSecretError } from '../core/errors.js';
import {
  isSecretName,
  MAX_SECRET_BYTES,
  SECRET_NAME_PATTERN,
  type SecretMapping,
  secretMappingOf,
  sealSecret,
} from '../core/secret-box.js';
import {
  deleteSecret,
  listSecretInfos,
  missingSecrets,
  putSealedSecret,
  type SecretInfo,
} from '../redis/secret-commands.js';

export type { SecretInfo } from '../redis/secret-commands.js';

function checkName(name: unknown): string {
  if (typeof name !== 'string' || !isSecretName(name)) {
    const got = typeof name === 'string' ? `\`${name.slice(0, 80)}\`` : `a ${typeof name}`;
    throw new InvalidOptionError(`Expected a secret name matching ${SECRET_NAME_PATTERN.source}, got ${got}`);
  }
  return name;
}

/** Seals and stores `value` as secret `name` (replacing it). Needs the client's `secretKey`. */
export async function setSecret(
  redis: Redis,
  keys: Keyspace,
  key: Buffer | undefined,
  name: string,
  value: string,
): Promise<void> {
  checkName(name);
  if (typeof value !== 'string') {
    throw new InvalidOptionError(`Expected the value of secret ${name} to be a string, got a ${typeof value}`);
  }
  const bytes = Buffer.byteLength(value, 'utf8');
  if (bytes === 0 || bytes > MAX_SECRET_BYTES) {
    throw new InvalidOptionError(
      `Expected the value of secret ${name} to be 1 to ${MAX_SECRET_BYTES} bytes, got ${bytes} bytes (not shown)`,
    );
  }
  if (key === undefined) {
    throw new InvalidOptionError(
      `Expected a secret key to set secret ${name} (the \`secretKey\` or \`secretKeyFile\` option; CLI: TYDRA_SECRET_KEY or --secret-key-file), got none`,
    );
  }
  await putSealedSecret(redis, keys, name, sealSecret(key, name, value), Date.now());
}

/** Every stored secret: names and when each was set, never values. */
export async function listSecrets(redis: Redis, keys: Keyspace): Promise<SecretInfo[]> {
  return listSecretInfos(redis, keys);
}

/** Removes secret `name`; false when there was none. */
export async function removeSecret(redis: Redis, keys: Keyspace, name: string): Promise<boolean> {
  return deleteSecret(redis, keys, checkName(name));
}

/**
 * The secrets of a submission of `task` (any kind: a module, a command, a parallel task, a
 * sequence whose steps get the mapping): its declared names, mapped over by the submission's
 * own; throws `UnknownSecretError` naming the first stored secret that does not exist.
 */
export async function submissionSecrets(
  redis: Redis,
  keys: Keyspace,
  task: string,
  declared: readonly string[],
  given: SecretMapping | undefined,
): Promise<SecretMapping | undefined> {
  const mapping = secretMappingOf(declared, given);
  const entries = Object.entries(mapping);
  if (entries.length === 0) {
    return undefined;
  }
  const stored = [...new Set(entries.map(([, name]) => name))];
  const [missing] = await missingSecrets(redis, keys, stored);
  if (missing !== undefined) {
    const env = entries.filter(([, name]) => name === missing).map(([envName]) => envName);
    throw new UnknownSecretError(
      `Expected secret ${missing} to be stored (for ${env.join(', ')} of task ${task}; set it with \`tydra secret set ${missing}\`), got none`,
      missing,
    );
  }
  return mapping;
}
