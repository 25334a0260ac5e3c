import assert from 'node:assert/strict';

import { SECCOMP_FD, seccompFlags, seccompProgram, withSeccompStdio } from '../../../sandbox/launcher/seccomp.js';

const ALLOW = 0x7fff0000;
const EPERM = 0x00050001;

/**
 * Runs a classic BPF program as the kernel would on a seccomp_data of (nr, arch): just the
 * instructions the filter uses (load word, jeq, jge, ret), anything else fails the test.
 */
function run(program: Buffer, nr: number, arch: number): number {
  const data = [nr, arch];
  let accumulator = 0;
  for (let pc = 0; pc < program.length / 8; pc += 1) {
    const code = program.readUInt16LE(pc * 8);
    const jt = program.readUInt8(pc * 8 + 2);
    const jf = program.readUInt8(pc * 8 + 3);
    const k = program.readUInt32LE(pc * 8 + 4);
    if (code === 0x20) {
      accumulator = data[k / 4] ?? assert.fail(`load of offset ${k}`);
    } else if (code === 0x15 || code === 0x35) {
      const taken = code === 0x15 ? accumulator === k : accumulator >= k;
      pc += taken ? jt : jf;
    } else if (code === 0x06) {
      return k;
    } else {
      assert.fail(`unexpected BPF code ${code.toString(16)}`);
    }
  }
  return assert.fail('the program ran off its end');
}

describe('the seccomp filter', () => {
  const cases = [
    { cpu: 'x64', arch: 0xc000003e, refused: [248, 249, 250], allowed: [0, 1, 39, 59, 247, 251, 334] },
    { cpu: 'x64', arch: 0x40000003, refused: [286, 287, 288], allowed: [1, 3, 4, 11, 248, 250, 285, 289] },
    { cpu: 'arm64', arch: 0xc00000b7, refused: [217, 218, 219], allowed: [0, 63, 64, 216, 220, 248, 250] },
    { cpu: 'arm64', arch: 0x40000028, refused: [309, 310, 311], allowed: [1, 3, 4, 217, 219, 308, 312] },
  ];
  for (const { cpu, arch, refused, allowed } of cases) {
    it(`${cpu}, arch 0x${arch.toString(16)}: refuses add_key, request_key and keyctl with EPERM, allows the rest`, () => {
      const program = seccompProgram(cpu) ?? assert.fail(`a program for ${cpu}`);
      for (const nr of refused) {
        assert.equal(run(program, nr, arch), EPERM, `call ${nr}`);
      }
      for (const nr of allowed) {
        assert.equal(run(program, nr, arch), ALLOW, `call ${nr}`);
      }
    });
  }

  it('refuses every call of an ABI it does not know, and x32 calls on x86_64', () => {
    const x64 = seccompProgram('x64') ?? assert.fail('a program for x64');
    assert.equal(run(x64, 0x40000000 + 1, 0xc000003e), EPERM, 'x32 write');
    assert.equal(run(x64, 1, 0xc00000b7), EPERM, 'an aarch64 call on x86_64');
    const arm64 = seccompProgram('arm64') ?? assert.fail('a program for arm64');
    assert.equal(run(arm64, 64, 0xc000003e), EPERM, 'an x86_64 call on aarch64');
  });

  it('has no program for a CPU it does not know (sandboxes then start without one)', () => {
    assert.equal(seccompProgram('ppc64'), undefined);
  });

  it("puts the filter's descriptor at its fd for bwrap's --seccomp, closing the fds in between", () => {
    assert.deepEqual(seccompFlags(), ['--seccomp', String(SECCOMP_FD)]);
    assert.deepEqual(withSeccompStdio(['pipe', 'pipe', 'pipe', 'pipe'], 42), [
      'pipe',
      'pipe',
      'pipe',
      'pipe',
      'ignore',
      'ignore',
      'ignore',
      42,
    ]);
  });
});
