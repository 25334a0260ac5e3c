/**
 * The dashboard's `/metrics` text: the registry's metrics followed by BullMQ's queue metrics
 * (`Queue.exportPrometheusMetrics`: job counts by state, completed and failed totals) for each
 * queue on the board. BullMQ writes a whole exposition per queue, each with its own `# HELP` and
 * `# TYPE` lines; concatenated they would declare every family once per queue, which Prometheus
 * refuses. So the queues' texts are merged into one family per metric name.
 */
import type { Queue } from 'bullmq';
import type { Registry } from 'prom-client';

interface Family {
  meta: string[];
  samples: string[];
}

/**
 * Merges expositions into one: each family's `# HELP` / `# TYPE` once, then all its samples in
 * the order read. A sample belongs to the family declared last if its name starts with that
 * family's name (`x_bucket` of histogram `x`), else to the family of its own name.
 */
export function mergeExpositions(texts: string[]): string {
  const families = new Map<string, Family>();
  const family = (name: string): Family => {
    let found = families.get(name);
    if (found === undefined) {
      found = { meta: [], samples: [] };
      families.set(name, found);
    }
    return found;
  };
  for (const text of texts) {
    let current: string | undefined;
    for (const line of text.split('\n')) {
      const meta = /^#\s+(HELP|TYPE)\s+(\S+)/.exec(line);
      if (meta !== null) {
        const [, kind = '', name = ''] = meta;
        current = name;
        const target = family(name);
        if (!target.meta.some((seen) => seen.startsWith(`# ${kind} `))) {
          target.meta.push(`# ${kind} ${line.replace(/^#\s+\S+\s+/, '')}`);
        }
        continue;
      }
      if (line.trim() === '' || line.startsWith('#')) {
        continue;
      }
      const name = /^[^{\s]+/.exec(line)?.[0] ?? '';
      family(current !== undefined && name.startsWith(current) ? current : name).samples.push(line);
    }
  }
  const lines = [...families.values()].flatMap((found) => [...found.meta, ...found.samples]);
  return lines.length > 0 ? `${lines.join('\n')}\n` : '';
}

/**
 * The registry's metrics and the queues' BullMQ metrics. A queue that cannot answer (Redis
 * down) is left out rather than failing the scrape: the registry's own numbers still help then.
 */
export async function dashboardMetricsText(registry: Registry, queues: Queue[]): Promise<string> {
  const [own, ...perQueue] = await Promise.all([
    registry.metrics(),
    ...queues.map((queue) => queue.exportPrometheusMetrics().catch(() => '')),
  ]);
  const separator = own === undefined || own === '' || own.endsWith('\n') ? '' : '\n';
  return `${own ?? ''}${separator}${mergeExpositions(perQueue)}`;
}
