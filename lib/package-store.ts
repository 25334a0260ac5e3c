/**
 * Package versions in Redis: upload, dedupe, resolve and chunked download.
 *
 * Values can be tens of MiB, and Redis serves one command at a time, so bytes move in commands
 * of at most 1 MiB (APPEND to upload, GETRANGE to download): other clients never wait behind a
 * 50 MiB SET or GET.
 */
import { randomUUID } from 'node:crypto';

import type { Redis } from 'ioredis';

import { PackageIntegrityError, UnknownTaskError } from './errors.js';
import { packageBlobKey, packageLatestKey, packagesKey, packageVersionsKey, uploadKey } from './keys.js';
import { CommitDeployStatus, withCommands } from './lua.js';
import type { Manifest } from './manifest.js';
import type { PackedPackage } from './pack.js';
import { sha1Hex } from './pack.js';

/** Largest value moved by one Redis command. */
export const CHUNK_BYTES = 1024 * 1024;
/** An abandoned upload (crashed deployer) disappears on its own after this long. */
const UPLOAD_TTL_MS = 60 * 60 * 1000;

/** One deployed version of a package, as stored in `tydra:package:<name>:versions`. */
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

export class PackageStore {
  constructor(private readonly redis: Redis) {}

  /** Stores a packed package (once per content) and makes it the package's latest version. */
  async deploy(packed: PackedPackage): Promise<DeployResult> {
    const { name } = packed.manifest;
    const { sha1, tarball } = packed;
    const blobKey = packageBlobKey(name, sha1);
    const upload = uploadKey(randomUUID());
    // Dedupe: identical content is never uploaded twice. A concurrent deploy of the same tree
    // may still upload; the commit script then keeps one value and drops the other.
    if ((await this.redis.exists(blobKey)) === 0) {
      for (let offset = 0; offset < tarball.length; offset += CHUNK_BYTES) {
        await this.redis.multi().append(upload, tarball.subarray(offset, offset + CHUNK_BYTES)).pexpire(upload, UPLOAD_TTL_MS).exec();
      }
    }
    const version: PackageVersion = { name, sha1, size: tarball.length, deployedAt: Date.now(), manifest: packed.manifest };
    const status = await withCommands(this.redis).commitDeploy(
      upload,
      blobKey,
      packageVersionsKey(name),
      packageLatestKey(name),
      packagesKey,
      sha1,
      JSON.stringify(version),
      String(version.deployedAt),
      name,
    );
    if (status === CommitDeployStatus.UploadMissing) {
      throw new PackageIntegrityError(`Expected the upload of ${name}@${sha1} to be in Redis at commit, found none (expired or deleted)`);
    }
    return { name, sha1, size: tarball.length, ref: `${name}@${sha1}`, stored: status === CommitDeployStatus.Stored };
  }

  /** The version `name` or `name@prefix` names. Throws `UnknownTaskError` if none or ambiguous. */
  async resolve(name: string, versionPrefix?: string): Promise<PackageVersion> {
    const versionsKey = packageVersionsKey(name);
    let sha1: string | null;
    if (versionPrefix === undefined) {
      sha1 = await this.redis.get(packageLatestKey(name));
      if (sha1 === null) {
        throw new UnknownTaskError(`Expected a deployed package named ${name}, found none`);
      }
    } else if (versionPrefix.length === 40) {
      sha1 = versionPrefix;
    } else {
      const matches = (await this.redis.hkeys(versionsKey)).filter((candidate) => candidate.startsWith(versionPrefix));
      if (matches.length > 1) {
        throw new UnknownTaskError(`Expected ${name}@${versionPrefix} to name one version, got ${matches.length}: use a longer prefix`);
      }
      sha1 = matches[0] ?? null;
    }
    const json = sha1 === null ? null : await this.redis.hget(versionsKey, sha1);
    if (json === null) {
      throw new UnknownTaskError(`Expected a deployed version ${name}@${versionPrefix ?? sha1}, found none`);
    }
    return JSON.parse(json) as PackageVersion;
  }

  /** Every deployed version of `name`, newest first, with which one is latest. */
  async versions(name: string): Promise<{ latest: string | null; versions: PackageVersion[] }> {
    const [latest, all] = await Promise.all([this.redis.get(packageLatestKey(name)), this.redis.hvals(packageVersionsKey(name))]);
    const versions = all.map((json) => JSON.parse(json) as PackageVersion).sort((a, b) => b.deployedAt - a.deployedAt);
    return { latest, versions };
  }

  /** Names of all deployed packages. */
  async names(): Promise<string[]> {
    return this.redis.zrange(packagesKey, 0, -1);
  }

  /**
   * Reads `pkg:<name>:<sha1>` in GETRANGE chunks of at most 1 MiB and checks its SHA-1.
   * Throws `PackageIntegrityError` when the bytes are missing or do not hash to `sha1`.
   */
  async download(name: string, sha1: string): Promise<Buffer> {
    const key = packageBlobKey(name, sha1);
    const length = await this.redis.strlen(key);
    if (length === 0) {
      throw new PackageIntegrityError(`Expected package bytes at ${key}, found none`);
    }
    const chunks: Buffer[] = [];
    for (let offset = 0; offset < length; offset += CHUNK_BYTES) {
      chunks.push(await this.redis.getrangeBuffer(key, offset, Math.min(offset + CHUNK_BYTES, length) - 1));
    }
    const bytes = Buffer.concat(chunks);
    const actual = sha1Hex(bytes);
    if (actual !== sha1) {
      throw new PackageIntegrityError(`Expected the bytes at ${key} to hash to ${sha1}, got ${actual}`);
    }
    return bytes;
  }
}
