/**
 * The Nodes page (`/tydra/nodes`): every registered node with its state, concurrency, the jobs
 * active in its queue, its sandbox mode, package cache and warm pool (as its heartbeat published them) and its
 * last heartbeat; for an admin, Drain / Resume (see `tydra-pages.ts`).
 */
import { cacheInWords, poolInWords, secretKeyInWords } from '../cluster/node-facts.js';
import type { NodeInfo } from '../cluster/node-registry.js';
import { html, type SafeHtml, timeWithAge } from './page-html.js';

/** How a node reads on the page. */
export type NodeState = 'alive' | 'draining' | 'paused' | 'late' | 'stopped' | 'dead';

/**
 * `alive`: heard from within three heartbeats; `late`: silent longer, but its work is not taken
 * back yet; `dead`: silent for so long that its waiting work is taken back; `stopped`: shut down
 * cleanly. `paused`: alive, not draining, but its queue paused in BullMQ by something else than a
 * drain (a script, an older dashboard): it is still sent work, which waits there (Resume fixes it).
 */
export function nodeState(node: NodeInfo, queuePaused = false): NodeState {
  if (node.state === 'stopped') {
    return 'stopped';
  }
  if (node.alive) {
    // Draining (`tydra node drain`, or the board's pause of its queue): alive, sent nothing new.
    return node.draining ? 'draining' : queuePaused ? 'paused' : 'alive';
  }
  return node.lost ? 'dead' : 'late';
}

export interface NodeRow {
  node: NodeInfo;
  /** Jobs active in its queue; undefined when the dashboard has not opened its queue yet. */
  running: number | undefined;
  /** Its queue is paused in BullMQ. */
  paused?: boolean | undefined;
}

/** Drain (stop sending it work) or Resume, for an admin and a node that is alive. */
function nodeAction(node: NodeInfo, state: NodeState): SafeHtml {
  if (state !== 'alive' && state !== 'draining' && state !== 'paused') {
    return html``;
  }
  const action = state === 'alive' ? 'drain' : 'resume';
  return html`<form method="post" action="/tydra/nodes/${encodeURIComponent(node.id)}/${action}">
    <button type="submit">${action === 'drain' ? 'Drain' : 'Resume'}</button>
  </form>`;
}

export function nodesBody(rows: NodeRow[], now = Date.now(), admin = false): SafeHtml {
  if (rows.length === 0) {
    return html`<p>No node has registered.</p>`;
  }
  const lines = rows.map(({ node, running, paused }) => {
    const state = nodeState(node, paused);
    return html`<tr>
      <td><a href="/queue/node.${encodeURIComponent(node.id)}">${node.id}</a></td>
      <td>${node.hostname} (pid ${node.pid})</td>
      <td class="state-${state}">${state}</td>
      <td>${node.concurrency}</td>
      <td>${running ?? '?'}</td>
      <td class="sandbox">${node.sandbox ?? '?'}</td>
      <td class="cache">${cacheInWords(node)}</td>
      <td class="secret-key">${secretKeyInWords(node)}</td>
      <td class="pool">${poolInWords(node)}</td>
      <td>${timeWithAge(node.lastSeen, now)}</td>
      ${admin ? html`<td>${nodeAction(node, state)}</td>` : html``}
    </tr>`;
  });
  return html`<table>
      <thead>
        <tr>
          <th>id</th>
          <th>host</th>
          <th>state</th>
          <th>concurrency</th>
          <th>running</th>
          <th>sandbox</th>
          <th>cached packages</th>
          <th>secret key</th>
          <th>warm pool</th>
          <th>last heartbeat</th>
          ${admin ? html`<th></th>` : html``}
        </tr>
      </thead>
      <tbody>
        ${lines}
      </tbody>
    </table>
    <p class="note">
      alive: heard from within three heartbeats; draining: alive, sent no new work (tydra node drain ID; tydra node
      resume ID undoes it); paused: alive, its queue paused by something else than a drain, so work sent there waits
      (Resume); late: silent longer; dead: silent past its lock duration, its waiting work taken back; stopped: shut
      down cleanly. Sandbox: bubblewrap with a cgroup (v2 or v1) per TaskInstance, or with rlimits only (no usable
      cgroups), or unsandboxed (--unsafe-no-sandbox, development only). Cached packages: versions extracted in its cache
      and their size, as of its last heartbeat. Secret key: whether it holds one (TaskInstances that need secrets go
      only to nodes that do, when any does). Warm pool: pre-started single-use sandboxes it keeps / the most it keeps
      (--warm-max), and how many TaskInstances found one (hits) or started cold (misses); - for a node not alive.
    </p>`;
}
