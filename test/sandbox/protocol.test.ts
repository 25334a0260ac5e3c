import assert from 'node:assert/strict';

import { LineSplitter } from '../../sandbox/protocol.js';

describe('LineSplitter', () => {
  function split(chunks: string[], max = 100): { lines: string[]; accepted: boolean[] } {
    const lines: string[] = [];
    const splitter = new LineSplitter(max, (line) => lines.push(line));
    const accepted = chunks.map((chunk) => splitter.push(chunk));
    splitter.flush();
    return { lines, accepted };
  }

  it('emits every line, empty ones included, whether chunks cut lines or hold several', () => {
    assert.deepEqual(split(['a\nb', 'c\n\nd', 'e', '\nf']).lines, ['a', 'bc', '', 'de', 'f']);
  });

  it('keeps a line split over many chunks whole and in order', () => {
    const chunks = Array.from({ length: 50 }, (_, i) => String(i % 10));
    assert.deepEqual(split([...chunks, '\n'], 1000).lines, [chunks.join('')]);
  });

  it('refuses an unterminated line past the limit, and flush() still hands it over', () => {
    const { lines, accepted } = split(['12345', '67890', 'x'], 10);
    assert.deepEqual(accepted, [true, true, false]);
    assert.deepEqual(lines, ['1234567890x']);
  });

  it('accepts again once the long line ended', () => {
    const { lines, accepted } = split(['0123456789ab\nok'], 10);
    assert.deepEqual(accepted, [true]);
    assert.deepEqual(lines, ['0123456789ab', 'ok']);
  });
});
