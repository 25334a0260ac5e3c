/** Defaults of the dashboard and the dev cluster, apart from the heavy modules so the CLI's `--help` loads none. */
/** The default of each dashboard option, as documented above (the CLI shows them in `--help`). */
export const DASHBOARD_DEFAULTS = { port: 3000, host: '127.0.0.1', refreshMs: 5000 } as const;

/** The default of each dev-cluster option, as documented in `dev-cluster.ts` (the CLI shows them in `--help`). */
export const DEV_CLUSTER_DEFAULTS = {
  nodes: 2,
  dataDir: '.tydra',
  dashboardPort: DASHBOARD_DEFAULTS.port,
  nodeConcurrency: 2,
} as const;
