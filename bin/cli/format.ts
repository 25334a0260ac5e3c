/** How the CLI prints what the library returns: `--json` prints the data, otherwise these lines. */
import type { NodeInfo, PackageVersionUse, PruneReport, TaskStatus } from '../../lib/index.js';
import { cacheInWords, poolInWords, secretKeyInWords } from '../../lib/cluster/node-facts.js';
import { formatProgress } from './progress.js';

export function print(json: boolean | undefined, data: unknown, text: string): void {
  process.stdout.write(`${json ? JSON.stringify(data, null, 2) : text}\n`);
}

export function formatStatus(s: TaskStatus): string {
  const lines = [
    `${s.id}  ${s.state}`,
    `ref: ${s.ref}`,
    `node: ${s.nodeId ?? '-'}`,
    `submitted: ${s.submittedAt === undefined ? '-' : new Date(s.submittedAt).toISOString()}`,
  ];
  if (s.runAt !== undefined) {
    lines.push(`runs at: ${new Date(s.runAt).toISOString()}`);
  }
  if (s.progress !== undefined) {
    lines.push(`progress: ${formatProgress(s.progress)}`);
  }
  if (s.state === 'completed') {
    lines.push(`result: ${JSON.stringify(s.result)}`);
  }
  if (s.error !== undefined) {
    lines.push(`error: ${s.error}`);
  }
  if (s.logs.length > 0) {
    lines.push('logs:', ...s.logs.map((line) => `  ${line}`));
  }
  return lines.join('\n');
}

export function formatNode(n: NodeInfo): string {
  const seen = n.lastSeen ? `${Math.round((Date.now() - n.lastSeen) / 1000)} s ago` : 'never';
  // Late: heartbeats missed, but not for as long as its locks last (a busy node, maybe not dead).
  const health = n.alive ? 'alive' : n.state === 'stopped' ? 'stopped' : n.lost ? 'dead' : 'late';
  // Draining: marked by an operator (`tydra node drain`); it gets no new work.
  const state = n.draining && !n.lost ? `${health}, draining` : health;
  // Sandbox, cache, secret key: what the node published with its heartbeat (`?` for a node that did not).
  const facts = `sandbox ${n.sandbox ?? '?'}  cache ${cacheInWords(n)}  secret key ${secretKeyInWords(n)}`;
  return `${n.id}  ${state}  concurrency ${n.concurrency}  warm pool ${poolInWords(n)}  host ${n.hostname} pid ${n.pid}  ${facts}  last heartbeat ${seen}`;
}

/** One row of `tydra packages NAME`, as `--json` prints it. */
export interface VersionRow {
  sha1: string;
  size: number;
  deployedAt: string;
  latest: boolean;
  undeployed: boolean;
  references: number;
  holderStates: Record<string, number>;
  leaseMs: number;
  idleSince: string | null;
  tasks: string[];
}

export function versionRow(v: PackageVersionUse, latest: string | null): VersionRow {
  return {
    sha1: v.sha1,
    size: v.size,
    deployedAt: new Date(v.deployedAt).toISOString(),
    latest: v.sha1 === latest,
    undeployed: v.undeployed,
    references: v.references,
    holderStates: v.holderStates,
    leaseMs: v.leaseMs,
    idleSince: v.idleSince === undefined ? null : new Date(v.idleSince).toISOString(),
    tasks: Object.keys(v.manifest.tasks),
  };
}

export function formatVersion(name: string, r: VersionRow): string {
  const flags = [
    r.latest ? 'latest' : '',
    r.undeployed ? 'undeployed' : '',
    r.leaseMs > 0 ? `lease ${Math.ceil(r.leaseMs / 1000)} s` : '',
  ].filter(Boolean);
  const states = Object.entries(r.holderStates)
    .map(([state, count]) => `${state} ${count}`)
    .join(', ');
  return [
    `${name}@${r.sha1}  ${r.size} B  deployed ${r.deployedAt}  refs ${r.references}${states ? ` (${states})` : ''}`,
    flags.length > 0 ? `  ${flags.join(', ')}` : '',
    `  tasks: ${r.tasks.join(', ')}`,
  ].join('');
}

export function formatPrune(report: PruneReport): string {
  const verb = report.dryRun ? 'would remove' : 'removed';
  return [
    ...report.healed.map(
      (h) =>
        `${report.dryRun ? 'would heal' : 'healed'} ${h.name}@${h.sha1}: reference of ${h.instanceId} (job ${h.why})`,
    ),
    ...report.removed.map((d) => `${verb} ${d.name}@${d.sha1}: ${d.reason}`),
    ...report.kept.map((d) => `kept ${d.name}@${d.sha1}: ${d.reason}`),
    `${report.packages} package(s), ${report.versions} version(s): ${report.removed.length} ${verb}, ` +
      `${report.kept.length} kept (${report.ms} ms)${report.dryRun ? '; dry run, nothing changed' : ''}`,
  ].join('\n');
}
