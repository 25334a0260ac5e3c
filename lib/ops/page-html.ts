/**
 * HTML for the tydra pages, escaped by construction: the `html` tag escapes every value it is
 * given (names, logs, results and errors come from tasks and from anyone with Redis access) unless
 * the value is itself built by `html`. The page frame is plain HTML with inline CSS: no scripts,
 * no external fonts, nothing to build.
 */

/** A fragment of HTML that is safe to insert as it is (built by {@link html}). */
export class SafeHtml {
  constructor(readonly text: string) {}

  toString(): string {
    return this.text;
  }
}

const ENTITIES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

/** `text` with every character that means something in HTML (text or attribute) escaped. */
export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (char) => ENTITIES[char] ?? char);
}

function render(value: unknown): string {
  if (value instanceof SafeHtml) {
    return value.text;
  }
  if (Array.isArray(value)) {
    return value.map(render).join('');
  }
  if (value === undefined || value === null || value === false) {
    return '';
  }
  // Objects are shown as JSON: `[object Object]` would say nothing.
  const text = typeof value === 'object' || typeof value === 'function' ? JSON.stringify(value) : `${value as string}`;
  return escapeHtml(text ?? '');
}

/** Tagged template: the literal parts as written, every value escaped (arrays of fragments joined). */
export function html(strings: TemplateStringsArray, ...values: unknown[]): SafeHtml {
  let out = strings[0] ?? '';
  values.forEach((value, index) => {
    out += render(value) + (strings[index + 1] ?? '');
  });
  return new SafeHtml(out);
}

const STYLE = `
body { font-family: system-ui, sans-serif; margin: 0; color: #1f2328; background: #f6f8fa; }
header { background: #24292f; padding: .6rem 1rem; }
header a { color: #fff; margin-right: 1.2rem; text-decoration: none; }
main { padding: 1rem; }
table { border-collapse: collapse; background: #fff; margin-bottom: 1rem; }
th, td { border: 1px solid #d0d7de; padding: .3rem .6rem; text-align: left; vertical-align: top; }
pre { background: #fff; border: 1px solid #d0d7de; padding: .6rem; overflow: auto; max-height: 30rem; }
td pre { margin: 0; padding: 0; border: 0; background: none; white-space: pre-wrap; }
form { display: inline; }
.note { color: #57606a; }
.state-alive, .state-completed { color: #1a7f37; }
.state-late, .state-draining, .state-paused, .state-running, .state-dispatched { color: #9a6700; }
.state-dead, .state-failed, .state-cancelled { color: #cf222e; }
`;

/** A whole page: header with links to the board and every tydra page, then `body`. */
export function page(title: string, body: SafeHtml): string {
  return html`<!doctype html>
    <html lang="en">
      <head>
        <meta charset="utf-8" />
        <title>${title} · tydra</title>
        <style>
          ${new SafeHtml(STYLE)}
        </style>
      </head>
      <body>
        <header><a href="/">Board</a><a href="/tydra/nodes">Nodes</a><a href="/tydra/packages">Packages</a></header>
        <main>
          <h1>${title}</h1>
          ${body}
        </main>
      </body>
    </html> `.text;
}

/** `2026-11-30T15:43:32.000Z (3 s ago)`, or `in 3 s` for a time to come. */
export function timeWithAge(at: number, now = Date.now()): string {
  const iso = new Date(at).toISOString();
  const seconds = Math.round((now - at) / 1000);
  const span = (s: number): string =>
    s < 120 ? `${s} s` : s < 7200 ? `${Math.round(s / 60)} min` : `${Math.round(s / 3600)} h`;
  return seconds >= 0 ? `${iso} (${span(seconds)} ago)` : `${iso} (in ${span(-seconds)})`;
}
