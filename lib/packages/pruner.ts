/**
 * One pass of the prune job: deletes package versions nothing can need any more, and heals
 * references that a crashed process never released.
 *
 * Cost: package names are walked with ZSCAN and each package's versions with HSCAN, in bounded
 * batches, so a pass costs O(versions) Redis calls and never blocks Redis on one big reply; the
 * queues' jobs are never listed. Only holders older than `auditAfterMs` are checked against
 * their jobs, a page at a time.
 *
 * Safety: the decision and the delete of each version happen in one script
 * (`prune-version-8.lua`), and a submit takes its reference in one script too
 * (`take-ref-6.lua`), so a version with a holder is never deleted. Healing a holder only starts
 * the version's grace period; the version is deleted at the earliest one grace period later.
 */
import type { Redis } from 'ioredis';

import { TASKS_QUEUE } from '../../queues/tasks.js';
import {
  packageBlobKey,
  packageHoldersKey,
  packageIdleKey,
  packageLatestKey,
  packageLeaseKey,
  packagesKey,
  packageUndeployedKey,
  packageVersionsKey,
  taskJobKey,
} from '../redis/keys.js';
import { type PruneVerdict, withCommands } from '../redis/scripts.js';
import { PackageStore } from './store.js';

/** Default time a version must stay without holders before it may be deleted. */
export const DEFAULT_GRACE_MS = 10 * 60 * 1000;
/** Holders younger than this are never audited: their submit may still be enqueuing. */
export const DEFAULT_AUDIT_AFTER_MS = 60 * 1000;

export interface PruneOptions {
  /** Decide and report, change nothing. @defaultValue false */
  dryRun?: boolean;
  /** @defaultValue 10 minutes */
  graceMs?: number;
  /** @defaultValue 60 s */
  auditAfterMs?: number;
  /** SCAN COUNT and audit page size. @defaultValue 200 */
  batch?: number;
  /** Called with one line per decision, for the job's log. */
  log?: (line: string) => void;
}

export interface PruneDecision {
  name: string;
  sha1: string;
  verdict: PruneVerdict;
  /** Why, in words. */
  reason: string;
}

export interface HealedHolder {
  instanceId: string;
  name: string;
  sha1: string;
  /** `finished` (completed or failed without a release) or `missing` (job removed). */
  why: 'finished' | 'missing';
}

export interface PruneReport {
  dryRun: boolean;
  removed: PruneDecision[];
  kept: PruneDecision[];
  healed: HealedHolder[];
  packages: number;
  versions: number;
  ms: number;
}

export async function prunePackages(redis: Redis, options: PruneOptions = {}): Promise<PruneReport> {
  const started = Date.now();
  const dryRun = options.dryRun ?? false;
  const graceMs = options.graceMs ?? DEFAULT_GRACE_MS;
  const auditAfterMs = options.auditAfterMs ?? DEFAULT_AUDIT_AFTER_MS;
  const batch = options.batch ?? 200;
  const log = options.log ?? (() => undefined);
  const store = new PackageStore(redis);
  withCommands(redis);
  const report: PruneReport = { dryRun, removed: [], kept: [], healed: [], packages: 0, versions: 0, ms: 0 };

  for await (const names of scanPackageNames(redis, batch)) {
    report.packages += names.length;
    const versions = await listVersions(redis, names, batch);
    // Versions are decided a batch at a time: one pipelined round trip for the holder audit, one
    // for the decisions, so a pass costs O(versions / batch) round trips.
    for (let start = 0; start < versions.length; start += batch) {
      const chunk = versions.slice(start, start + batch);
      report.versions += chunk.length;
      const olderThan = Date.now() - auditAfterMs;
      const audit = redis.pipeline();
      for (const { name, sha1 } of chunk) {
        audit.zcount(packageHoldersKey(name, sha1), '-inf', olderThan);
      }
      const counts = (await audit.exec()) ?? [];
      const healedBy = new Map<string, number>();
      for (const [index, { name, sha1 }] of chunk.entries()) {
        if (Number(counts[index]?.[1] ?? 0) === 0) {
          continue;
        }
        const healed = await auditHolders(redis, store, name, sha1, { dryRun, olderThan, batch });
        healedBy.set(`${name}@${sha1}`, healed.length);
        for (const holder of healed) {
          report.healed.push(holder);
          log(
            `${dryRun ? 'would heal' : 'healed'} a reference of ${holder.instanceId} on ${name}@${sha1} (its job is ${holder.why})`,
          );
        }
      }
      const now = Date.now();
      const decide = redis.pipeline() as unknown as PrunePipeline;
      for (const { name, sha1 } of chunk) {
        decide.pruneVersion(
          packageVersionsKey(name),
          packageHoldersKey(name, sha1),
          packageLeaseKey(name, sha1),
          packageLatestKey(name),
          packageIdleKey(name),
          packageUndeployedKey(name),
          packageBlobKey(name, sha1),
          packagesKey,
          sha1,
          String(now),
          String(graceMs),
          dryRun ? '1' : '0',
          name,
        );
      }
      const verdicts = (await decide.exec()) ?? [];
      for (const [index, { name, sha1 }] of chunk.entries()) {
        const [error, answer] = verdicts[index] ?? [new Error('no reply'), undefined];
        if (error !== null) {
          throw error;
        }
        const [verdict, detail, undeployed] = answer as [PruneVerdict, number, (0 | 1)?];
        const wouldHeal = dryRun ? (healedBy.get(`${name}@${sha1}`) ?? 0) : 0;
        const decision: PruneDecision = {
          name,
          sha1,
          verdict,
          reason: explain(verdict, Number(detail), now, graceMs, wouldHeal),
        };
        if (undeployed === 1) {
          decision.reason = `undeployed, no holders since ${new Date(Number(detail)).toISOString()}`;
        }
        if (verdict === 'removed' || verdict === 'eligible') {
          report.removed.push(decision);
          log(`${dryRun ? 'would remove' : 'removed'} ${name}@${sha1}: ${decision.reason}`);
        } else if (verdict !== 'gone') {
          report.kept.push(decision);
          log(`kept ${name}@${sha1}: ${decision.reason}`);
        }
      }
    }
  }
  report.ms = Date.now() - started;
  return report;
}

/** A pipeline with tydra's scripts on it (defined on the client by `withCommands`). */
interface PrunePipeline {
  pruneVersion(...keysThenArgs: string[]): PrunePipeline;
  exec(): Promise<Array<[Error | null, unknown]> | null>;
}

/** Package names, a ZSCAN page at a time. */
async function* scanPackageNames(redis: Redis, batch: number): AsyncGenerator<string[]> {
  let cursor = '0';
  do {
    const [next, entries] = await redis.zscan(packagesKey, cursor, 'COUNT', batch);
    cursor = next;
    const names = entries.filter((_entry, index) => index % 2 === 0);
    if (names.length > 0) {
      yield names;
    }
  } while (cursor !== '0');
}

/** Every version of `names`: the first HSCAN page of each in one pipeline, the rare rest one by one. */
async function listVersions(
  redis: Redis,
  names: readonly string[],
  batch: number,
): Promise<Array<{ name: string; sha1: string }>> {
  const firstPages = redis.pipeline();
  for (const name of names) {
    firstPages.hscan(packageVersionsKey(name), '0', 'COUNT', batch);
  }
  const pages = (await firstPages.exec()) ?? [];
  const versions: Array<{ name: string; sha1: string }> = [];
  for (const [index, name] of names.entries()) {
    let [cursor, entries] = (pages[index]?.[1] as [string, string[]] | undefined) ?? ['0', []];
    for (;;) {
      for (let i = 0; i < entries.length; i += 2) {
        const sha1 = entries[i];
        if (sha1 !== undefined) {
          versions.push({ name, sha1 });
        }
      }
      if (cursor === '0') {
        break;
      }
      [cursor, entries] = await redis.hscan(packageVersionsKey(name), cursor, 'COUNT', batch);
    }
  }
  return versions;
}

/**
 * Drops holders whose TaskInstance job is finished or gone: a process that crashed between the
 * job's end and its release. Holders younger than `olderThan` are left alone.
 */
async function auditHolders(
  redis: Redis,
  store: PackageStore,
  name: string,
  sha1: string,
  options: { dryRun: boolean; olderThan: number; batch: number },
): Promise<HealedHolder[]> {
  const healed: HealedHolder[] = [];
  const key = packageHoldersKey(name, sha1);
  let offset = 0;
  for (;;) {
    const ids = await redis.zrangebyscore(key, '-inf', options.olderThan, 'LIMIT', offset, options.batch);
    if (ids.length === 0) {
      return healed;
    }
    const pipeline = redis.pipeline();
    for (const id of ids) {
      pipeline.hmget(taskJobKey(TASKS_QUEUE, id), 'finishedOn', 'timestamp');
    }
    const answers = (await pipeline.exec()) ?? [];
    let kept = 0;
    for (const [index, id] of ids.entries()) {
      const [finishedOn, timestamp] = (answers[index]?.[1] as Array<string | null> | undefined) ?? [];
      const why =
        timestamp === null || timestamp === undefined
          ? 'missing'
          : finishedOn !== null && finishedOn !== undefined
            ? 'finished'
            : undefined;
      if (why === undefined) {
        kept += 1;
        continue;
      }
      if (options.dryRun || (await store.releaseRef(id, { name, sha1 }))) {
        healed.push({ instanceId: id, name, sha1, why });
      }
      if (options.dryRun) {
        kept += 1;
      }
    }
    // Released holders left the set: only the kept ones shift the next page.
    offset += kept;
  }
}

function explain(verdict: PruneVerdict, detail: number, now: number, graceMs: number, wouldHeal: number): string {
  switch (verdict) {
    case 'held':
      return `held by ${detail} TaskInstance(s)${wouldHeal > 0 ? ` (${wouldHeal} of them finished or gone: a real run would release them and start the grace period)` : ''}`;
    case 'leased':
      return `deploy lease for ${Math.ceil(detail / 1000)} s more`;
    case 'latest':
      return 'the latest version';
    case 'grace':
      return `no holders since ${new Date(detail).toISOString()}; grace period ends in ${Math.ceil((detail + graceMs - now) / 1000)} s`;
    case 'eligible':
    case 'removed':
      return `no holders since ${new Date(detail).toISOString()}, no lease, not latest`;
    case 'gone':
      return 'already removed';
  }
}
