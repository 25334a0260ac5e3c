import assert from 'node:assert/strict';

import { invalidUtf8Offset } from '../../bin/cli/input.js';

describe('invalidUtf8Offset', () => {
  it('names the first byte that does not start valid UTF-8', () => {
    const cases: Array<[number[], number]> = [
      [[0xff], 0],
      [[0x61, 0x62, 0xff], 2],
      [[0xc3, 0xa9, 0x80], 2], // é, then a lone continuation byte
      [[0x61, 0xe2, 0x82], 1], // € cut short at the end
      [[0x61, 0xe2, 0x82, 0x41], 1], // € cut short before more text
      [[0xef, 0xbf, 0xbd, 0xc0, 0x80], 3], // a real U+FFFD, then an overlong NUL
      [[0xf0, 0x9f, 0x98, 0x80, 0xed, 0xa0, 0x80], 4], // 😀, then a UTF-16 surrogate
    ];
    for (const [bytes, offset] of cases) {
      assert.equal(invalidUtf8Offset(Uint8Array.from(bytes)), offset, Buffer.from(bytes).toString('hex'));
    }
  });
});
