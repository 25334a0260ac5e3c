/**
 * Package versions in Redis: upload, dedupe, resolve and chunked download.
 *
 * Values can be tens of MiB, and Redis serves one command at a time, so bytes move in commands
 * of at most 1 MiB (APPEND to upload, GETRANGE to download): other clients never wait behind a
 * 50 MiB SET or GET.
 */
import { createHash, randomUUID } from 'node:crypto';

import type { Redis } from 'ioredis';

import { PackageIntegrityError, UnknownTaskError } from '../core/errors.js';
import type { Keyspace } from '../redis/keys.js';
import {
  commitDeploy,
  CommitDeployStatus,
  releaseRef,
  ReleaseRefStatus,
  resolveVersion,
  takeRef,
  TakeRefStatus,
  undeploy,
  UndeployStatus,
} from '../redis/package-commands.js';
import { PACKAGE_DEFAULTS } from './defaults.js';
import type { Manifest } from './manifest.js';
import type { PackedPackage } from './pack.js';

/** Largest value moved by one Redis command. */
export const CHUNK_BYTES = 1024 * 1024;
/** GETRANGEs of one download sent before the first answer is read. */
const DOWNLOAD_IN_FLIGHT = 4;
/** An abandoned upload (crashed deployer) disappears on its own after this long. */
const UPLOAD_TTL_MS = 60 * 60 * 1000;

/** One deployed version of a package, as stored in `{NAME}:package:<name>:versions`. */
export interface PackageVersion {
  name: string;
  sha1: string;
  /** Compressed bytes. */
  size: number;
  /** When this content was first deployed (ms since the epoch). */
  deployedAt: number;
  manifest: Manifest;
}

/** What a deploy returns. */
export interface DeployResult {
  name: string;
  sha1: string;
  size: number;
  /** `name@sha1`. */
  ref: string;
  /** False when the same content was already stored: nothing new was written. */
  stored: boolean;
}

/** A version as `tydra packages NAME` shows it: the stored entry plus its use. */
export interface PackageVersionInfo extends PackageVersion {
  latest: boolean;
  /** Removed from use by `undeploy`: bytes kept until no TaskInstance holds it. */
  undeployed: boolean;
  /** TaskInstances holding a reference (the reference count). */
  holders: string[];
  /** Time left on the deploy lease, in ms (0: none). */
  leaseMs: number;
  /** When the last holder let go (ms since the epoch); undefined while held. */
  idleSince: number | undefined;
}

export interface PackageStoreOptions {
  /** Hold a deploy keeps on the version it stored. @defaultValue `PACKAGE_DEFAULTS.deployLeaseMs` (10 minutes) */
  leaseMs?: number;
}

export class PackageStore {
  private readonly leaseMs: number;

  constructor(
    private readonly redis: Redis,
    private readonly keys: Keyspace,
    options: PackageStoreOptions = {},
  ) {
    this.leaseMs = options.leaseMs ?? PACKAGE_DEFAULTS.deployLeaseMs;
  }

  /**
   * Stores a packed package (once per content), makes it the package's latest version and holds
   * it with a lease, so that a submit a few minutes later still finds it.
   */
  async deploy(packed: PackedPackage): Promise<DeployResult> {
    const { name } = packed.manifest;
    const { sha1, tarball } = packed;
    const blobKey = this.keys.packageBlob(name, sha1);
    const uploadId = randomUUID();
    const upload = this.keys.upload(uploadId);
    // Lease first, then look: a prune between our EXISTS and our commit would otherwise delete
    // the blob we decided not to upload (Ray learned this the hard way).
    await this.redis.set(this.keys.packageLease(name, sha1), String(Date.now()), 'PX', this.leaseMs);
    // Dedupe: identical content is never uploaded twice. A concurrent deploy of the same tree
    // may still upload; the commit script then keeps one value and drops the other.
    if ((await this.redis.exists(blobKey)) === 0) {
      for (let offset = 0; offset < tarball.length; offset += CHUNK_BYTES) {
        await this.redis
          .multi()
          .append(upload, tarball.subarray(offset, offset + CHUNK_BYTES))
          .pexpire(upload, UPLOAD_TTL_MS)
          .exec();
      }
    }
    const version: PackageVersion = {
      name,
      sha1,
      size: tarball.length,
      deployedAt: Date.now(),
      manifest: packed.manifest,
    };
    const status = await commitDeploy(this.redis, this.keys, {
      name,
      sha1,
      uploadId,
      versionJson: JSON.stringify(version),
      now: version.deployedAt,
      leaseMs: this.leaseMs,
    });
    if (status === CommitDeployStatus.UploadMissing) {
      throw new PackageIntegrityError(
        `Expected the upload of ${name}@${sha1} to be in Redis at commit, found none (expired or deleted)`,
      );
    }
    return { name, sha1, size: tarball.length, ref: `${name}@${sha1}`, stored: status === CommitDeployStatus.Stored };
  }

  /**
   * The version `name` or `name@prefix` names. Throws `UnknownTaskError` if none or ambiguous.
   * With `referenceFor` (a submit), that TaskInstance's reference on the version is taken in the
   * same round trip, so nothing can prune it between the two; the caller lets go of it
   * (`releaseRef`) if it does not enqueue the TaskInstance after all.
   */
  async resolve(
    name: string,
    versionPrefix?: string,
    options: { referenceFor?: string } = {},
  ): Promise<PackageVersion> {
    const sha1 = await this.fullSha1(name, versionPrefix);
    const found = await resolveVersion(this.redis, this.keys, { name, sha1, referenceFor: options.referenceFor });
    if (found.sha1 === null) {
      throw new UnknownTaskError(`Expected a deployed package named ${name}, found none`);
    }
    if (found.json === null) {
      throw new UnknownTaskError(`Expected a deployed version ${name}@${versionPrefix ?? found.sha1}, found none`);
    }
    if (found.undeployed) {
      throw new UnknownTaskError(
        `Expected a version of ${name} in use, got ${name}@${found.sha1.slice(0, 12)}, which was undeployed`,
      );
    }
    if (options.referenceFor !== undefined && !found.referenced) {
      // The record is there but its tarball is not: a prune is taking the version away.
      throw new UnknownTaskError(
        `Expected package version ${name}@${found.sha1} to be stored, found none (never deployed, or pruned)`,
      );
    }
    return JSON.parse(found.json) as PackageVersion;
  }

  /** The full sha1 a version prefix names (undefined for the latest: the script reads it). */
  private async fullSha1(name: string, versionPrefix: string | undefined): Promise<string | undefined> {
    if (versionPrefix === undefined || versionPrefix.length === 40) {
      return versionPrefix;
    }
    const matches = (await this.redis.hkeys(this.keys.packageVersions(name))).filter((candidate) =>
      candidate.startsWith(versionPrefix),
    );
    if (matches.length > 1) {
      throw new UnknownTaskError(
        `Expected ${name}@${versionPrefix} to name one version, got ${matches.length}: use a longer prefix`,
      );
    }
    if (matches[0] === undefined) {
      throw new UnknownTaskError(`Expected a deployed version ${name}@${versionPrefix}, found none`);
    }
    return matches[0];
  }

  /**
   * Takes `instanceId`'s reference on `name@sha1`, atomically with the check that the version
   * still exists and is in use. Idempotent. Throws `UnknownTaskError` when the version is gone
   * (pruned) or undeployed; `alreadyHeld` accepts an undeployed version the instance holds.
   */
  async takeRef(
    name: string,
    sha1: string,
    instanceId: string,
    options: { alreadyHeld?: boolean } = {},
  ): Promise<void> {
    const status = await takeRef(this.redis, this.keys, {
      name,
      sha1,
      instanceId,
      now: Date.now(),
      alreadyHeld: options.alreadyHeld ?? false,
    });
    if (status === TakeRefStatus.Missing) {
      throw new UnknownTaskError(
        `Expected package version ${name}@${sha1} to be stored, found none (never deployed, or pruned)`,
      );
    }
    if (status === TakeRefStatus.Undeployed) {
      throw new UnknownTaskError(
        `Expected a version of ${name} in use, got ${name}@${sha1.slice(0, 12)}, which was undeployed`,
      );
    }
  }

  /** Releases `instanceId`'s reference; true if it held one. Safe to call any number of times. */
  async releaseRef(instanceId: string, pinned?: { name: string; sha1: string }): Promise<boolean> {
    let version = pinned;
    if (version === undefined) {
      const ref = await this.redis.hget(this.keys.refs, instanceId);
      const at = ref?.lastIndexOf('@') ?? -1;
      if (ref === null || ref === undefined || at < 1) {
        return false;
      }
      version = { name: ref.slice(0, at), sha1: ref.slice(at + 1) };
    }
    const status = await releaseRef(this.redis, this.keys, { ...version, instanceId, now: Date.now() });
    return status === ReleaseRefStatus.Released;
  }

  /**
   * Removes `name@sha1` (or every version of `name`) from use. Returns how many versions were
   * newly undeployed and the new latest. Throws `UnknownTaskError` for an unknown version.
   */
  async undeploy(name: string, sha1?: string): Promise<{ undeployed: number; latest: string | null }> {
    const { status, undeployed, latest } = await undeploy(this.redis, this.keys, { name, sha1 });
    if (status === UndeployStatus.NotFound) {
      throw new UnknownTaskError(
        `Expected a deployed ${sha1 === undefined ? 'package' : 'version'} ${name}${sha1 === undefined ? '' : `@${sha1}`}, found none`,
      );
    }
    return { undeployed, latest };
  }

  /** The full sha1 of the version `prefix` names (undeployed ones included). */
  async expandVersion(name: string, prefix: string): Promise<string> {
    const matches = (await this.redis.hkeys(this.keys.packageVersions(name))).filter((candidate) =>
      candidate.startsWith(prefix),
    );
    if (matches.length !== 1 || matches[0] === undefined) {
      throw new UnknownTaskError(`Expected ${name}@${prefix} to name one stored version, got ${matches.length}`);
    }
    return matches[0];
  }

  /** Every stored version of `name`, newest first, with its use. */
  async versions(name: string): Promise<{ latest: string | null; versions: PackageVersionInfo[] }> {
    const [latest, all, undeployed, idle] = await Promise.all([
      this.redis.get(this.keys.packageLatest(name)),
      this.redis.hvals(this.keys.packageVersions(name)),
      this.redis.smembers(this.keys.packageUndeployed(name)),
      this.redis.hgetall(this.keys.packageIdle(name)),
    ]);
    const stored = all.map((json) => JSON.parse(json) as PackageVersion).sort((a, b) => b.deployedAt - a.deployedAt);
    const versions = await Promise.all(
      stored.map(async (version): Promise<PackageVersionInfo> => {
        const [holders, lease] = await Promise.all([
          this.redis.zrange(this.keys.packageHolders(name, version.sha1), 0, -1),
          this.redis.pttl(this.keys.packageLease(name, version.sha1)),
        ]);
        const idleAt = idle[version.sha1];
        return {
          ...version,
          latest: version.sha1 === latest,
          undeployed: undeployed.includes(version.sha1),
          holders,
          leaseMs: Math.max(0, lease),
          idleSince: holders.length > 0 ? undefined : idleAt === undefined ? version.deployedAt : Number(idleAt),
        };
      }),
    );
    return { latest, versions };
  }

  /** Names of all deployed packages. */
  async names(): Promise<string[]> {
    return this.redis.zrange(this.keys.packages, 0, -1);
  }

  /**
   * Reads `{NAME}:pkg:<name>:<sha1>` in GETRANGE chunks of at most 1 MiB and checks its SHA-1; returns
   * the chunks in order (never concatenated: extraction streams them). Up to
   * `DOWNLOAD_IN_FLIGHT` GETRANGEs are pipelined on the connection, so the next chunk is already
   * on its way while one is read; Redis still serves them one 1 MiB command at a time.
   * Throws `PackageIntegrityError` when the bytes are missing or do not hash to `sha1`.
   */
  async download(name: string, sha1: string): Promise<Buffer[]> {
    const key = this.keys.packageBlob(name, sha1);
    const length = await this.redis.strlen(key);
    if (length === 0) {
      throw new PackageIntegrityError(`Expected package bytes at ${key}, found none`);
    }
    const offsets: number[] = [];
    for (let offset = 0; offset < length; offset += CHUNK_BYTES) {
      offsets.push(offset);
    }
    const hash = createHash('sha1');
    const chunks: Buffer[] = [];
    for (let first = 0; first < offsets.length; first += DOWNLOAD_IN_FLIGHT) {
      const batch = await Promise.all(
        offsets
          .slice(first, first + DOWNLOAD_IN_FLIGHT)
          .map((offset) => this.redis.getrangeBuffer(key, offset, Math.min(offset + CHUNK_BYTES, length) - 1)),
      );
      for (const chunk of batch) {
        hash.update(chunk);
        chunks.push(chunk);
      }
    }
    const actual = hash.digest('hex');
    if (actual !== sha1) {
      throw new PackageIntegrityError(`Expected the bytes at ${key} to hash to ${sha1}, got ${actual}`);
    }
    return chunks;
  }
}
