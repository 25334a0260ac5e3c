/**
 * Typed wrapper of `list-nodes-1.lua`: the node registry's ZSET and every node's description in
 * one round trip, for the master's dispatch (`lib/cluster/node-registry.ts`).
 */
import type { Redis } from 'ioredis';

import { IllegalStateError } from '../core/errors.js';
import type { Keyspace } from './keys.js';
import { runScript } from './scripts.js';

export interface RegisteredNode {
  id: string;
  /** Last heartbeat, or when it stopped (ms since the epoch): the ZSET's score. */
  lastSeen: number;
  /** Its description (`{NAME}:node:<id>`); empty when that is gone. */
  info: Record<string, string>;
}

/** Every registered node, in the ZSET's order, with its description. */
export async function listNodes(redis: Redis, keys: Keyspace): Promise<RegisteredNode[]> {
  const reply = await runScript(redis, { script: 'listNodes', keys: [keys.nodes], argv: [keys.nodeInfo('')] });
  if (!Array.isArray(reply) || reply.length % 3 !== 0) {
    throw new IllegalStateError(`the listNodes script replied ${JSON.stringify(reply)}, expected [id, score, hash]*`);
  }
  const nodes: RegisteredNode[] = [];
  for (let i = 0; i < reply.length; i += 3) {
    const fields = reply[i + 2] as unknown;
    const info: Record<string, string> = {};
    if (Array.isArray(fields)) {
      for (let f = 0; f + 1 < fields.length; f += 2) {
        info[String(fields[f])] = String(fields[f + 1]);
      }
    }
    nodes.push({ id: String(reply[i]), lastSeen: Number(reply[i + 1]), info });
  }
  return nodes;
}
