/** A registered node as `nodes()` reads it, for tests of what prints or shows one. */
import type { NodeInfo } from '../lib/cluster/node-registry.js';

/** An alive, idle node `n1` with no warm pool published, with `fields` over it. */
export const nodeInfo = (fields: Partial<NodeInfo>): NodeInfo => ({
  id: 'n1',
  concurrency: 1,
  hostname: 'h',
  pid: 1,
  startedAt: 0,
  heartbeatMs: 1000,
  lockDurationMs: 30_000,
  lastSeen: 0,
  state: 'running',
  alive: true,
  draining: false,
  lost: false,
  warm: [],
  cached: [],
  ...fields,
});
