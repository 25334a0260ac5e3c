/** The metrics options a master and a node share (see `metrics.ts` and `metrics-server.ts`). */
import { Registry } from 'prom-client';
import { z } from 'zod';

import { METRICS_DEFAULT_HOST } from './metrics-defaults.js';

export interface MetricsOptions {
  /**
   * The prom-client registry this role's metrics go to. Pass one registry to several roles of a
   * process to see them all at one endpoint (`tydra dev` does).
   * @defaultValue a new registry of this instance's own
   */
  metrics?: Registry;
  /** Serve `GET /metrics` on this TCP port (0 picks a free one). @defaultValue none (not served) */
  metricsPort?: number;
  /** Address `/metrics` binds to; it has no authentication. @defaultValue `127.0.0.1` */
  metricsHost?: string;
}

export interface CompiledMetricsOptions {
  metrics: Registry;
  metricsPort: number | undefined;
  metricsHost: string;
}

/** The zod shape of {@link MetricsOptions}, to spread into a role's strict schema. */
export const metricsShape = {
  metrics: z.custom<Registry>((value) => value instanceof Registry, 'a prom-client Registry').optional(),
  metricsPort: z.number().int().min(0).max(65535).optional(),
  metricsHost: z.string().min(1).default(METRICS_DEFAULT_HOST),
};

/** The compiled metrics options, from what the role's schema parsed. */
export function compileMetricsOptions(parsed: {
  metrics?: Registry | undefined;
  metricsPort?: number | undefined;
  metricsHost: string;
}): CompiledMetricsOptions {
  return {
    metrics: parsed.metrics ?? new Registry(),
    metricsPort: parsed.metricsPort,
    metricsHost: parsed.metricsHost,
  };
}
