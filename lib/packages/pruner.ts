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
 * (`resolve-version-5.lua`, or `take-ref-6.lua` when the master holds it again), so a version
 * with a holder is never deleted. Healing a holder only starts the version's grace period; the
 * version is deleted at the earliest one grace period later.
 */
import type { Redis } from 'ioredis';

// Kept, not passed in: every holder is a TaskInstance, whose job lives in the tasks queue by
// contract, so a parameter would only make each caller repeat this one constant.
import { TASKS_QUEUE } from '../../queues/tasks.js';
import type { Keyspace } from '../redis/keys.js';
import { type PruneVerdict, pruneVersions } from '../redis/package-commands.js';
import { PACKAGE_DEFAULTS } from './defaults.js';
import { PackageStore } from './store.js';

export interface PruneOptions {
  /** Decide and report, change nothing. @defaultValue false */
  dryRun?: boolean;
  /** Time a version must stay without holders before it may be deleted. @defaultValue `PACKAGE_DEFAULTS.pruneGraceMs` (10 minutes) */
  graceMs?: number;
  /** Holders younger than this are never audited. @defaultValue `PACKAGE_DEFAULTS.pruneAuditAfterMs` (60 s) */
  auditAfterMs?: number;
  /** SCAN COUNT and audit page size. @defaultValue `PACKAGE_DEFAULTS.pruneBatch` (200) */
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

/** A pass's settings, with defaults applied, and what every step of it shares. */
interface Pass {
  redis: Redis;
  keys: Keyspace;
  store: PackageStore;
  dryRun: boolean;
  graceMs: number;
  auditAfterMs: number;
  batch: number;
  log: (line: string) => void;
  report: PruneReport;
}

type VersionRef = { name: string; sha1: string };

export async function prunePackages(redis: Redis, keys: Keyspace, options: PruneOptions = {}): Promise<PruneReport> {
  const started = Date.now();
  const dryRun = options.dryRun ?? false;
  const pass: Pass = {
    redis,
    keys,
    store: new PackageStore(redis, keys),
    dryRun,
    graceMs: options.graceMs ?? PACKAGE_DEFAULTS.pruneGraceMs,
    auditAfterMs: options.auditAfterMs ?? PACKAGE_DEFAULTS.pruneAuditAfterMs,
    batch: options.batch ?? PACKAGE_DEFAULTS.pruneBatch,
    log: options.log ?? (() => undefined),
    report: { dryRun, removed: [], kept: [], healed: [], packages: 0, versions: 0, ms: 0 },
  };
  for await (const names of scanPackageNames(redis, keys, pass.batch)) {
    pass.report.packages += names.length;
    const versions = await listVersions(redis, keys, names, pass.batch);
    // Versions are decided a batch at a time: one pipelined round trip for the holder audit, one
    // for the decisions, so a pass costs O(versions / batch) round trips.
    for (let start = 0; start < versions.length; start += pass.batch) {
      const chunk = versions.slice(start, start + pass.batch);
      pass.report.versions += chunk.length;
      const healedBy = await healChunk(pass, chunk);
      await decideChunk(pass, chunk, healedBy);
    }
  }
  pass.report.ms = Date.now() - started;
  return pass.report;
}

/** Audits the holders of a chunk's versions; returns how many were healed per `name@sha1`. */
async function healChunk(pass: Pass, chunk: readonly VersionRef[]): Promise<Map<string, number>> {
  const { redis, keys, dryRun, batch } = pass;
  const olderThan = Date.now() - pass.auditAfterMs;
  const audit = redis.pipeline();
  for (const { name, sha1 } of chunk) {
    audit.zcount(keys.packageHolders(name, sha1), '-inf', olderThan);
  }
  const counts = (await audit.exec()) ?? [];
  const healedBy = new Map<string, number>();
  for (const [index, { name, sha1 }] of chunk.entries()) {
    if (Number(counts[index]?.[1] ?? 0) === 0) {
      continue;
    }
    const healed = await auditHolders(redis, keys, pass.store, name, sha1, { dryRun, olderThan, batch });
    healedBy.set(`${name}@${sha1}`, healed.length);
    for (const holder of healed) {
      pass.report.healed.push(holder);
      pass.log(
        `${dryRun ? 'would heal' : 'healed'} a reference of ${holder.instanceId} on ${name}@${sha1} (its job is ${holder.why})`,
      );
    }
  }
  return healedBy;
}

/** Decides (and unless a dry run, deletes) a chunk of versions in one pipeline, and reports each. */
async function decideChunk(pass: Pass, chunk: readonly VersionRef[], healedBy: Map<string, number>): Promise<void> {
  const { dryRun, graceMs, report } = pass;
  const now = Date.now();
  const replies = await pruneVersions(
    pass.redis,
    pass.keys,
    chunk.map(({ name, sha1 }) => ({ name, sha1, now, graceMs, dryRun })),
  );
  for (const [index, { name, sha1 }] of chunk.entries()) {
    const reply = replies[index];
    if (reply === undefined) {
      continue;
    }
    const { verdict, detail, undeployed } = reply;
    const wouldHeal = dryRun ? (healedBy.get(`${name}@${sha1}`) ?? 0) : 0;
    const reason = undeployed
      ? `undeployed, no holders since ${new Date(detail).toISOString()}`
      : explain(verdict, detail, now, graceMs, wouldHeal);
    const decision: PruneDecision = { name, sha1, verdict, reason };
    if (verdict === 'removed' || verdict === 'eligible') {
      report.removed.push(decision);
      pass.log(`${dryRun ? 'would remove' : 'removed'} ${name}@${sha1}: ${decision.reason}`);
    } else if (verdict !== 'gone') {
      report.kept.push(decision);
      pass.log(`kept ${name}@${sha1}: ${decision.reason}`);
    }
  }
}

/** Package names, a ZSCAN page at a time. */
async function* scanPackageNames(redis: Redis, keys: Keyspace, batch: number): AsyncGenerator<string[]> {
  let cursor = '0';
  do {
    const [next, entries] = await redis.zscan(keys.packages, cursor, 'COUNT', batch);
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
  keys: Keyspace,
  names: readonly string[],
  batch: number,
): Promise<Array<{ name: string; sha1: string }>> {
  const firstPages = redis.pipeline();
  for (const name of names) {
    firstPages.hscan(keys.packageVersions(name), '0', 'COUNT', batch);
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
      [cursor, entries] = await redis.hscan(keys.packageVersions(name), cursor, 'COUNT', batch);
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
  keys: Keyspace,
  store: PackageStore,
  name: string,
  sha1: string,
  options: { dryRun: boolean; olderThan: number; batch: number },
): Promise<HealedHolder[]> {
  const healed: HealedHolder[] = [];
  const key = keys.packageHolders(name, sha1);
  let offset = 0;
  for (;;) {
    const ids = await redis.zrangebyscore(key, '-inf', options.olderThan, 'LIMIT', offset, options.batch);
    if (ids.length === 0) {
      return healed;
    }
    const pipeline = redis.pipeline();
    for (const id of ids) {
      pipeline.hmget(keys.taskJob(TASKS_QUEUE, id), 'finishedOn', 'timestamp');
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
