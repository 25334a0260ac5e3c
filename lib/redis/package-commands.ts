/**
 * Typed wrappers of the package scripts in `commands/`. Each takes named arguments, builds the
 * script's KEYS and ARGV in the order its header documents, and maps the reply to a typed
 * result: callers never see positional strings or raw status codes.
 */
import type { Redis } from 'ioredis';

import { IllegalStateError } from '../core/errors.js';
import type { Keyspace } from './keys.js';
import { runScript, runScripts, type ScriptCall } from './scripts.js';

/** Status codes of `commit-deploy-8.lua`. */
export enum CommitDeployStatus {
  Stored = 1,
  AlreadyStored = 0,
  UploadMissing = -1,
}

/** Status codes of `take-ref-6.lua`. */
export enum TakeRefStatus {
  Held = 1,
  Missing = 0,
  Undeployed = -1,
}

/** Status codes of `release-ref-3.lua`. */
export enum ReleaseRefStatus {
  Released = 1,
  NotHeld = 0,
}

/** Status of `undeploy-3.lua`: a count of -1 means the version or package does not exist. */
export enum UndeployStatus {
  Undeployed = 'undeployed',
  NotFound = 'not-found',
}

/** Verdicts of `prune-version-8.lua`. */
export type PruneVerdict = 'gone' | 'held' | 'leased' | 'latest' | 'grace' | 'eligible' | 'removed';
const PRUNE_VERDICTS: ReadonlySet<string> = new Set([
  'gone',
  'held',
  'leased',
  'latest',
  'grace',
  'eligible',
  'removed',
]);

function toStatus<E extends number>(values: Record<string, string | E>, reply: unknown, script: string): E {
  if (typeof reply === 'number' && Object.values(values).includes(reply as E)) {
    return reply as E;
  }
  throw new IllegalStateError(`the ${script} script replied ${JSON.stringify(reply)}`);
}

export interface CommitDeployArgs {
  name: string;
  sha1: string;
  /** The upload being committed (`{NAME}:upload:<uploadId>`); may not exist on a dedupe. */
  uploadId: string;
  /** The version entry, as JSON. */
  versionJson: string;
  now: number;
  leaseMs: number;
}

/** Makes an uploaded version visible: blob, version entry, latest, package list and lease in one step. */
export async function commitDeploy(redis: Redis, keys: Keyspace, args: CommitDeployArgs): Promise<CommitDeployStatus> {
  const { name, sha1 } = args;
  const reply = await runScript(redis, {
    script: 'commitDeploy',
    keys: [
      keys.upload(args.uploadId),
      keys.packageBlob(name, sha1),
      keys.packageVersions(name),
      keys.packageLatest(name),
      keys.packages,
      keys.packageLease(name, sha1),
      keys.packageIdle(name),
      keys.packageUndeployed(name),
    ],
    argv: [sha1, args.versionJson, String(args.now), name, String(args.leaseMs)],
  });
  return toStatus(CommitDeployStatus, reply, 'commitDeploy');
}

export interface TakeRefArgs {
  name: string;
  sha1: string;
  instanceId: string;
  now: number;
  /** Accept an undeployed version (the instance already holds it). */
  alreadyHeld: boolean;
}

/** Takes `instanceId`'s reference on `name@sha1`, atomically with the check that it can be used. */
export async function takeRef(redis: Redis, keys: Keyspace, args: TakeRefArgs): Promise<TakeRefStatus> {
  const { name, sha1 } = args;
  const reply = await runScript(redis, {
    script: 'takeRef',
    keys: [
      keys.packageVersions(name),
      keys.packageHolders(name, sha1),
      keys.refs,
      keys.packageUndeployed(name),
      keys.packageBlob(name, sha1),
      keys.packageIdle(name),
    ],
    argv: [sha1, args.instanceId, String(args.now), `${name}@${sha1}`, args.alreadyHeld ? '1' : '0'],
  });
  return toStatus(TakeRefStatus, reply, 'takeRef');
}

export interface ResolvedVersion {
  /** The version's sha1; null when the package has no latest. */
  sha1: string | null;
  /** The version's record (JSON); null when there is no such version. */
  json: string | null;
  undeployed: boolean;
  /** Whether `referenceFor`'s reference is now held (false when none was asked for). */
  referenced: boolean;
}

/**
 * Which sha1 `name`'s latest is (unless `sha1` is given), that version's record and whether it was
 * undeployed, in one round trip; with `referenceFor`, that TaskInstance's reference on it is taken
 * in the same step when the version can be used.
 */
export async function resolveVersion(
  redis: Redis,
  keys: Keyspace,
  args: { name: string; sha1: string | undefined; referenceFor?: string; now?: number },
): Promise<ResolvedVersion> {
  const { name } = args;
  const reply = await runScript(redis, {
    script: 'resolveVersion',
    keys: [
      keys.packageLatest(name),
      keys.packageVersions(name),
      keys.packageUndeployed(name),
      keys.refs,
      keys.packageIdle(name),
    ],
    argv: [
      args.sha1 ?? '',
      args.referenceFor ?? '',
      String(args.now ?? Date.now()),
      name,
      keys.packageHolders(name, ''),
      keys.packageBlob(name, ''),
    ],
  });
  if (!Array.isArray(reply) || reply.length !== 4) {
    throw new IllegalStateError(
      `the resolveVersion script replied ${JSON.stringify(reply)}, expected [sha1, json, 0|1, 0|1]`,
    );
  }
  const [sha1, json, undeployed, referenced] = reply as [unknown, unknown, unknown, unknown];
  return {
    sha1: typeof sha1 === 'string' && sha1 !== '' ? sha1 : null,
    json: typeof json === 'string' && json !== '' ? json : null,
    undeployed: undeployed === 1,
    referenced: referenced === 1,
  };
}

export interface ReleaseRefArgs {
  name: string;
  sha1: string;
  instanceId: string;
  now: number;
}

/** Releases `instanceId`'s reference on `name@sha1` (idempotent). */
export async function releaseRef(redis: Redis, keys: Keyspace, args: ReleaseRefArgs): Promise<ReleaseRefStatus> {
  const reply = await runScript(redis, {
    script: 'releaseRef',
    keys: [keys.packageHolders(args.name, args.sha1), keys.refs, keys.packageIdle(args.name)],
    argv: [args.instanceId, args.sha1, String(args.now)],
  });
  return toStatus(ReleaseRefStatus, reply, 'releaseRef');
}

export interface UndeployArgs {
  name: string;
  /** The version to undeploy; undefined for every version of the package. */
  sha1: string | undefined;
}

export interface UndeployReply {
  status: UndeployStatus;
  /** Versions newly undeployed. */
  undeployed: number;
  /** The package's latest version afterwards. */
  latest: string | null;
}

/** Removes `name@sha1` (or every version of `name`) from use, moving latest if needed. */
export async function undeploy(redis: Redis, keys: Keyspace, args: UndeployArgs): Promise<UndeployReply> {
  const reply = await runScript(redis, {
    script: 'undeploy',
    keys: [keys.packageVersions(args.name), keys.packageLatest(args.name), keys.packageUndeployed(args.name)],
    argv: [args.sha1 ?? ''],
  });
  const [count, latest] = Array.isArray(reply) ? (reply as unknown[]) : [];
  if (typeof count !== 'number' || typeof latest !== 'string') {
    throw new IllegalStateError(`the undeploy script replied ${JSON.stringify(reply)}`);
  }
  return {
    status: count < 0 ? UndeployStatus.NotFound : UndeployStatus.Undeployed,
    undeployed: Math.max(0, count),
    latest: latest === '' ? null : latest,
  };
}

export interface PruneVersionArgs {
  name: string;
  sha1: string;
  now: number;
  graceMs: number;
  /** Decide, change nothing. */
  dryRun: boolean;
}

export interface PruneVersionReply {
  verdict: PruneVerdict;
  /** Holders (`held`), lease ms left (`leased`), idle since in ms (`grace`, `eligible`, `removed`), else 0. */
  detail: number;
  /** `eligible` or `removed` because it was undeployed (not because its grace period ran out). */
  undeployed: boolean;
}

function pruneVersionCall(keys: Keyspace, args: PruneVersionArgs): ScriptCall {
  const { name, sha1 } = args;
  return {
    script: 'pruneVersion',
    keys: [
      keys.packageVersions(name),
      keys.packageHolders(name, sha1),
      keys.packageLease(name, sha1),
      keys.packageLatest(name),
      keys.packageIdle(name),
      keys.packageUndeployed(name),
      keys.packageBlob(name, sha1),
      keys.packages,
    ],
    argv: [sha1, String(args.now), String(args.graceMs), args.dryRun ? '1' : '0', name],
  };
}

function toPruneVersionReply(reply: unknown): PruneVersionReply {
  const [verdict, detail, undeployed] = Array.isArray(reply) ? (reply as unknown[]) : [];
  if (typeof verdict !== 'string' || !PRUNE_VERDICTS.has(verdict) || typeof detail !== 'number') {
    throw new IllegalStateError(`the pruneVersion script replied ${JSON.stringify(reply)}`);
  }
  return { verdict: verdict as PruneVerdict, detail, undeployed: undeployed === 1 };
}

/** Decides (and unless a dry run, deletes) one version, in one step. */
export async function pruneVersion(redis: Redis, keys: Keyspace, args: PruneVersionArgs): Promise<PruneVersionReply> {
  return toPruneVersionReply(await runScript(redis, pruneVersionCall(keys, args)));
}

/** {@link pruneVersion} for many versions in one pipeline (one round trip); replies in order. */
export async function pruneVersions(
  redis: Redis,
  keys: Keyspace,
  args: readonly PruneVersionArgs[],
): Promise<PruneVersionReply[]> {
  return (
    await runScripts(
      redis,
      args.map((one) => pruneVersionCall(keys, one)),
    )
  ).map(toPruneVersionReply);
}
