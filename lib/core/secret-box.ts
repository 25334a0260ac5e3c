/**
 * Secrets at rest: AES-256-GCM with a 32-byte key that only the clients setting secrets and the
 * nodes running tasks hold (masters and the dashboard never need it). Pure crypto and key
 * loading; the Redis side is `lib/redis/secret-commands.ts`.
 *
 * A sealed value is base64 of `version (1 byte) | IV (12 random bytes) | GCM tag (16) | ciphertext`.
 * The secret's name is the additional authenticated data: a sealed value copied under another
 * name does not open.
 */
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';

import { z } from 'zod';

import { SecretKeyError, SecretUnavailableError } from './errors.js';
import { ENV_NAME_PATTERN, isReservedEnvName } from './task-env.js';

const VERSION = 1;
const KEY_BYTES = 32;
const IV_BYTES = 12;
const TAG_BYTES = 16;

/** What a secret name looks like: as an environment variable name (a task sees it as one). */
export const SECRET_NAME_PATTERN = ENV_NAME_PATTERN;
/** Largest secret value, in UTF-8 bytes. */
export const MAX_SECRET_BYTES = 64 * 1024;
/** What a printed secret value becomes in a task's logs. */
export const SECRET_MASK = '***';

/** Where a key comes from: the key itself (base64 or hex), or a file holding it. */
export interface SecretKeySource {
  secretKey?: string | undefined;
  secretKeyFile?: string | undefined;
}

/**
 * The 32-byte key of `text` (base64 or hex, surrounding white space ignored). Throws
 * `SecretKeyError` naming `source` and what was wrong, never the key.
 */
export function parseSecretKey(text: string, source: string): Buffer {
  const trimmed = text.trim();
  const expected = `Expected ${source} to hold 32 random bytes in base64 or hex (make one with \`openssl rand -base64 32\`)`;
  let key: Buffer;
  // 44 characters is base64 of 32 bytes, even when every one of them is a hex digit.
  if (/^(?:[0-9a-fA-F]{2})+$/.test(trimmed) && trimmed.length !== 44) {
    key = Buffer.from(trimmed, 'hex');
  } else if (/^[A-Za-z0-9+/_-]+={0,2}$/.test(trimmed)) {
    key = Buffer.from(trimmed, 'base64');
  } else {
    throw new SecretKeyError(`${expected}, got ${trimmed.length} characters that are neither (not shown)`);
  }
  if (key.length !== KEY_BYTES) {
    throw new SecretKeyError(`${expected}, got ${key.length} bytes (not shown)`);
  }
  return key;
}

/** The key given directly or in a file (not both), or undefined when neither is given. */
export function loadSecretKey(source: SecretKeySource): Buffer | undefined {
  if (source.secretKey !== undefined && source.secretKeyFile !== undefined) {
    throw new SecretKeyError('Expected either the `secretKey` or the `secretKeyFile` option, got both');
  }
  if (source.secretKey !== undefined) {
    return parseSecretKey(source.secretKey, 'the secret key (`secretKey`, TYDRA_SECRET_KEY)');
  }
  if (source.secretKeyFile === undefined) {
    return undefined;
  }
  let text: string;
  try {
    text = readFileSync(source.secretKeyFile, 'utf8');
  } catch (error) {
    throw new SecretKeyError(
      `Expected a readable secret key file, got ${source.secretKeyFile}: ${(error as NodeJS.ErrnoException).code ?? 'unreadable'}`,
    );
  }
  return parseSecretKey(text, `the secret key file ${source.secretKeyFile}`);
}

/** Encrypts `value` for secret `name`: a fresh random IV each time. */
export function sealSecret(key: Buffer, name: string, value: string): string {
  const iv = randomBytes(IV_BYTES);
  const cipher = createCipheriv('aes-256-gcm', key, iv);
  cipher.setAAD(Buffer.from(name, 'utf8'));
  const ciphertext = Buffer.concat([cipher.update(value, 'utf8'), cipher.final()]);
  return Buffer.concat([Buffer.from([VERSION]), iv, cipher.getAuthTag(), ciphertext]).toString('base64');
}

/** Decrypts a sealed value of secret `name`; throws `SecretUnavailableError` for a wrong key or an altered value. */
export function openSecret(key: Buffer, name: string, sealed: string): string {
  const bytes = Buffer.from(sealed, 'base64');
  if (bytes.length < 1 + IV_BYTES + TAG_BYTES || bytes[0] !== VERSION) {
    throw new SecretUnavailableError(`Expected secret ${name} to be sealed in format version ${VERSION}, got another`);
  }
  const iv = bytes.subarray(1, 1 + IV_BYTES);
  const tag = bytes.subarray(1 + IV_BYTES, 1 + IV_BYTES + TAG_BYTES);
  try {
    const decipher = createDecipheriv('aes-256-gcm', key, iv);
    decipher.setAAD(Buffer.from(name, 'utf8'));
    decipher.setAuthTag(tag);
    return Buffer.concat([decipher.update(bytes.subarray(1 + IV_BYTES + TAG_BYTES)), decipher.final()]).toString(
      'utf8',
    );
  } catch {
    throw new SecretUnavailableError(
      `Expected secret ${name} to decrypt with this node's secret key, got a wrong key or an altered value`,
    );
  }
}

/** Whether `name` may name a secret (and so an environment variable of the task). */
export function isSecretName(name: string): boolean {
  return SECRET_NAME_PATTERN.test(name);
}

/**
 * `text` with every occurrence of each value replaced by `***`, longest values first (a value
 * that contains another is masked whole). Empty values are ignored.
 */
export function maskSecrets(text: string, values: readonly string[]): string {
  let masked = text;
  for (const value of [...values].filter((v) => v.length > 0).sort((a, b) => b.length - a.length)) {
    masked = masked.split(value).join(SECRET_MASK);
  }
  return masked;
}

/** A JSON value with the values masked in every string, keys included (`maskSecrets`). */
export function maskSecretsIn(value: unknown, values: readonly string[]): unknown {
  if (typeof value === 'string') {
    return maskSecrets(value, values);
  }
  if (Array.isArray(value)) {
    return value.map((item) => maskSecretsIn(item, values));
  }
  if (value !== null && typeof value === 'object') {
    return Object.fromEntries(
      Object.entries(value).map(([key, item]) => [maskSecrets(key, values), maskSecretsIn(item, values)]),
    );
  }
  return value;
}

/**
 * `{ ENV_NAME: 'stored-name' }`: which stored secret each environment variable of a task gets.
 * Names only, never values: it is part of the job data.
 */
export const secretMappingSchema = z
  .record(
    z
      .string()
      .regex(SECRET_NAME_PATTERN, `an environment variable name matching ${SECRET_NAME_PATTERN.source}`)
      .refine((name) => !isReservedEnvName(name), 'an environment variable name tydra does not set itself'),
    z.string().regex(SECRET_NAME_PATTERN, `a stored secret name matching ${SECRET_NAME_PATTERN.source}`),
  )
  .refine((mapping) => Object.keys(mapping).length <= 64, 'at most 64 secrets');
export type SecretMapping = z.infer<typeof secretMappingSchema>;

/** Each declared name mapped to the stored secret of the same name, then the submission's own mapping over it. */
export function secretMappingOf(
  declared: readonly string[] | undefined,
  given: SecretMapping | undefined,
): SecretMapping {
  return { ...Object.fromEntries((declared ?? []).map((name) => [name, name])), ...given };
}
