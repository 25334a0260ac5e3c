import assert from 'node:assert/strict';

import { escapeHtml, html, page, timeWithAge } from '../../../lib/ops/page-html.js';

/** Without the whitespace between tags (prettier lays out the `html` templates as HTML). */
const squeeze = (text: string): string => text.replace(/>\s+</g, '><').trim();

describe('the tydra pages HTML', () => {
  it('escapes every value put in a template, and only values', () => {
    const hostile = `<script>alert("x")</script>' &`;
    const fragment = html`<p title="${hostile}">${hostile}</p>`;
    assert.equal(
      fragment.text,
      '<p title="&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&#39; &amp;">&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&#39; &amp;</p>',
    );
    assert.equal(escapeHtml('a<b>c'), 'a&lt;b&gt;c');
  });

  it('inserts nested fragments as they are, joins arrays, shows objects as JSON and nothing for undefined', () => {
    const items = ['<a>', 'b'].map((item) => html`<li>${item}</li>`);
    assert.equal(
      squeeze(
        html`<ul>
          ${items}
        </ul>`.text,
      ),
      '<ul><li>&lt;a&gt;</li><li>b</li></ul>',
    );
    assert.equal(html`${{ k: '<v>' }}|${undefined}|${null}|${0}`.text, '{&quot;k&quot;:&quot;&lt;v&gt;&quot;}|||0');
  });

  it('escapes the page title and links every tydra page', () => {
    const text = page('<b>title</b>', html`<p>body</p>`);
    assert.match(text, /<title>&lt;b&gt;title&lt;\/b&gt; · tydra<\/title>/);
    assert.match(text, /href="\/tydra\/nodes"/);
    assert.match(text, /href="\/tydra\/packages"/);
    assert.doesNotMatch(text, /<script|https?:\/\//);
  });

  it('tells a time with its age', () => {
    const now = Date.UTC(2026, 0, 1, 0, 0, 10);
    assert.equal(timeWithAge(now - 3000, now), '2026-01-01T00:00:07.000Z (3 s ago)');
    assert.equal(timeWithAge(now + 600_000, now), '2026-01-01T00:10:10.000Z (in 10 min)');
  });
});
