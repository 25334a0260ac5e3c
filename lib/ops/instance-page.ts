/**
 * The TaskInstance page (`/tydra/instances/:id`): what `tydra status` says, for people — ref,
 * state, node, package@sha1, progress in words, logs, result or error; a parallel one's workunits
 * and a sequence's steps (`instance-parts-page.ts`) — and, for an admin while it has not ended, a
 * Cancel button (a same-origin POST; see `tydra-pages.ts`).
 */
import type { CancelResult, TaskStatus } from '../client/client.js';
import { describeProgress } from '../../queues/progress.js';
import type { InstanceParts } from './instance-parts.js';
import { partsBody } from './instance-parts-page.js';
import { html, type SafeHtml, timeWithAge } from './page-html.js';

/** The progress in words, as `tydra status` shows it. */
export const progressInWords = describeProgress;

/** What the page says after its Cancel button, by what `cancel` did. */
const CANCEL_NOTICES: Record<CancelResult['outcome'], string> = {
  removed: 'Cancelled before it started: removed.',
  cancelling: 'Cancel requested: its node was told to kill it; it ends as cancelled within a second (reload).',
  finished: 'It had already ended: nothing changed.',
};

const ENDED = new Set(['completed', 'failed', 'cancelled']);

/** The package name of a ref (`name@sha1/task` → `name`). */
const packageName = (ref: string): string => packageOf(ref).split('@')[0] ?? '';

/** The package part of a pinned ref (`name@sha1/task` → `name@sha1`). */
const packageOf = (ref: string): string => ref.slice(0, Math.max(0, ref.indexOf('/'))) || ref;

function outcome(status: TaskStatus): SafeHtml {
  if (status.state === 'completed') {
    return html`<h2>Result</h2>
      <pre id="result">${JSON.stringify(status.result, null, 2) ?? 'undefined'}</pre>`;
  }
  if (status.error !== undefined) {
    return html`<h2>Error</h2>
      <pre id="error">${status.error}</pre>`;
  }
  return html``;
}

export interface InstanceView {
  /** The user is an admin: the Cancel button shows while the TaskInstance has not ended. */
  canCancel: boolean;
  /** What the Cancel button just did. */
  cancelled?: CancelResult['outcome'] | undefined;
  /** Its workunits or steps (`instance-parts.ts`). */
  parts?: InstanceParts | undefined;
  now?: number;
}

/** The page body. */
export function instanceBody(status: TaskStatus, view: InstanceView): SafeHtml {
  const { canCancel, cancelled, now = Date.now() } = view;
  const id = encodeURIComponent(status.id);
  const notice = cancelled === undefined ? html`` : html`<p class="note" id="notice">${CANCEL_NOTICES[cancelled]}</p>`;
  const cancel =
    canCancel && !ENDED.has(status.state)
      ? html`<form method="post" action="/tydra/instances/${id}/cancel"><button type="submit">Cancel</button></form>`
      : html``;
  const node =
    status.nodeId === undefined
      ? html`-`
      : html`<a href="/queue/node.${encodeURIComponent(status.nodeId)}/${id}">${status.nodeId}</a>`;
  return html`${notice}
    <table>
      <tr>
        <th>id</th>
        <td>${status.id} (<a href="/queue/tasks/${id}">on the board</a>)</td>
      </tr>
      <tr>
        <th>ref</th>
        <td>${status.ref}</td>
      </tr>
      <tr>
        <th>state</th>
        <td class="state-${status.state}" id="state">${status.state}</td>
      </tr>
      <tr>
        <th>node</th>
        <td>${node}</td>
      </tr>
      <tr>
        <th>package</th>
        <td>
          ${packageOf(status.ref)} (<a href="/tydra/packages#package-${packageName(status.ref)}">its versions</a>)
        </td>
      </tr>
      <tr>
        <th>progress</th>
        <td>${status.progress === undefined ? 'none reported' : progressInWords(status.progress)}</td>
      </tr>
      <tr>
        <th>submitted</th>
        <td>${status.submittedAt !== undefined ? timeWithAge(status.submittedAt, now) : '-'}</td>
      </tr>
      <tr>
        <th>finished</th>
        <td>${status.finishedAt === undefined ? '-' : timeWithAge(status.finishedAt, now)}</td>
      </tr>
    </table>
    ${cancel} ${outcome(status)} ${partsBody(status.id, view.parts)}
    <h2>Logs</h2>
    <pre id="logs">${status.logs.length === 0 ? '(none)' : status.logs.join('\n')}</pre>`;
}
