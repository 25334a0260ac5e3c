/**
 * The parts of a TaskInstance on its page (see `instance-parts.ts`): a parallel one's workunit
 * counts and failures, paged with plain links (`?failures=<from>`); a sequence's steps with a
 * link to each step's TaskInstance page.
 */
import { FAILURES_PER_PAGE, type InstanceParts, type StepParts, type WorkunitParts } from './instance-parts.js';
import { html, type SafeHtml } from './page-html.js';

const instanceLink = (id: string): SafeHtml => html`<a href="/tydra/instances/${encodeURIComponent(id)}">${id}</a>`;

function pager(id: string, failures: WorkunitParts['failures']): SafeHtml {
  const base = `/tydra/instances/${encodeURIComponent(id)}?failures=`;
  const previous = failures.from > 0 ? Math.max(0, failures.from - FAILURES_PER_PAGE) : undefined;
  const next = failures.from + FAILURES_PER_PAGE < failures.total ? failures.from + FAILURES_PER_PAGE : undefined;
  return html`<p class="pager">
    ${previous === undefined ? '' : html`<a href="${base}${previous}#failures" rel="prev">Previous</a>`}
    ${next === undefined ? '' : html`<a href="${base}${next}#failures" rel="next">Next</a>`}
  </p>`;
}

function workunitsBody(id: string, parts: WorkunitParts): SafeHtml {
  const { counts, failures } = parts;
  const table =
    counts === undefined
      ? html`<p>No workunit yet (its split has not started), or its record expired.</p>`
      : html`<table id="workunits">
          <tr>
            <th>total</th>
            <td>${counts.total}${counts.splitDone ? '' : ' so far (split still running)'}</td>
          </tr>
          <tr>
            <th>done</th>
            <td>${counts.done}</td>
          </tr>
          <tr>
            <th>failed</th>
            <td>${counts.failed}</td>
          </tr>
          <tr>
            <th>running</th>
            <td>${counts.running}</td>
          </tr>
        </table>`;
  const shown =
    failures.items.length === 0
      ? ''
      : ` (${failures.from + 1}–${failures.from + failures.items.length} of ${failures.total})`;
  const rows = failures.items.map(
    (failure) =>
      html`<tr>
        <td>${failure.index}</td>
        <td><pre>${failure.message}</pre></td>
      </tr>`,
  );
  return html`<h2>Workunits</h2>
    ${table}
    <h2 id="failures">Failed workunits${shown}</h2>
    ${
      failures.total === 0
        ? html`<p>None.</p>`
        : html`<table id="failed-workunits">
              <thead>
                <tr>
                  <th>unit</th>
                  <th>error</th>
                </tr>
              </thead>
              <tbody>
                ${rows}
              </tbody>
            </table>
            ${pager(id, failures)}`
    }`;
}

function stepsBody(parts: StepParts): SafeHtml {
  if (parts.problem !== undefined) {
    return html`<h2>Steps</h2>
      <p>${parts.problem}</p>`;
  }
  const rows = parts.steps.flatMap((step) => {
    const number = `${step.index + 1}${step.index === parts.current ? ' (current)' : ''}`;
    const span = step.children.length;
    return step.children.map(
      (child, branch) =>
        html`<tr>
          ${
            branch === 0
              ? html`<td rowspan="${span}">${number}</td>
                  <td rowspan="${span}">${step.label}</td>`
              : ''
          }
          <td>${child.state === 'not started' || child.state === 'gone' ? child.id : instanceLink(child.id)}</td>
          <td>${child.task}</td>
          <td class="state-${child.state.replace(' ', '-')}">${child.state}</td>
        </tr>`,
    );
  });
  return html`<h2>Steps</h2>
    <table id="steps">
      <thead>
        <tr>
          <th>step</th>
          <th>task(s)</th>
          <th>TaskInstance</th>
          <th>task</th>
          <th>state</th>
        </tr>
      </thead>
      <tbody>
        ${rows}
      </tbody>
    </table>`;
}

/** The parts section of TaskInstance `id`'s page; nothing for a simple TaskInstance. */
export function partsBody(id: string, parts: InstanceParts | undefined): SafeHtml {
  if (parts === undefined) {
    return html``;
  }
  return parts.kind === 'parallel' ? workunitsBody(id, parts) : stepsBody(parts);
}
