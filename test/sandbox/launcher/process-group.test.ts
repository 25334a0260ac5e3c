/**
 * A sandbox is in a process group and session of its own, so a terminal's Ctrl-C (SIGINT to
 * the foreground process group) reaches the node, which decides, and never the sandbox.
 */
import assert from 'node:assert/strict';
import { chmod, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { execa } from 'execa';

import { installRuntime } from '../../../sandbox/launcher/runtime-dir.js';
import { defer, tempDir } from '../../helpers.js';

const HARNESS = fileURLToPath(new URL('process-group-harness.js', import.meta.url));

/** Says it runs, then waits for the test to create `go` in its (read-only) package folder. */
const WAIT_FOR_GO = `import { existsSync } from 'node:fs';
export default async () => {
  console.log('running');
  while (!existsSync(process.env.TYDRA_PACKAGE_DIR + '/go')) await new Promise((resolve) => setTimeout(resolve, 20));
  return 'finished';
};
`;

/** Process group and session ids (fields 5 and 6 of /proc/<pid>/stat). */
async function groupAndSession(pid: number): Promise<{ pgrp: number; session: number }> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
  // "pid (comm) state ppid pgrp session …": comm may hold spaces, so cut at the last ")".
  const [, , pgrp, session] = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return { pgrp: Number(pgrp), session: Number(session) };
}

describe('sandbox process group (@integration)', function () {
  this.timeout(60_000);

  it("is not the node's: a SIGINT to the node's process group leaves the task running to its result", async () => {
    const root = await tempDir();
    await chmod(root, 0o755);
    await writeFile(join(root, 'wait-for-go.mjs'), WAIT_FOR_GO, { mode: 0o644 });
    const runtimeDir = await installRuntime(root);
    // Detached: the harness leads its own group, so the SIGINT below never reaches this process.
    const harness = execa(process.execPath, [HARNESS, root, runtimeDir, `pgrp-${process.pid}`], {
      detached: true,
      buffer: false,
      reject: false,
    });
    defer(async () => {
      harness.kill('SIGKILL');
      await harness;
    });
    const lines: string[] = [];
    const waiters: Array<() => void> = [];
    harness.stdout.setEncoding('utf8');
    harness.stdout.on('data', (chunk: string) => {
      lines.push(...chunk.split('\n').filter(Boolean));
      waiters.splice(0).forEach((wake) => wake());
    });
    const line = async (pattern: RegExp): Promise<string> => {
      for (;;) {
        const found = lines.find((candidate) => pattern.test(candidate));
        if (found !== undefined) {
          return found;
        }
        await new Promise<void>((resolve) => waiters.push(resolve));
      }
    };
    const harnessPid = harness.pid ?? 0;
    const bwrapPids = (await line(/^bwrap /)).split(' ').slice(1).map(Number);
    assert.equal(bwrapPids.length, 1, `the harness's children: ${bwrapPids.join(', ')}`);
    const bwrapPid = bwrapPids[0] ?? 0;
    // bwrap is alive (its task waits for "go"), so this pid is certainly bwrap's.
    const ids = await groupAndSession(bwrapPid);
    const parent = await groupAndSession(harnessPid);
    assert.equal(parent.pgrp, harnessPid);
    assert.notEqual(ids.pgrp, parent.pgrp, 'bwrap is in the process group of the node that started it');
    assert.notEqual(ids.session, parent.session, 'bwrap is in the session of the node that started it');
    assert.equal(ids.pgrp, bwrapPid, 'bwrap leads a group of its own');

    process.kill(-harnessPid, 'SIGINT');
    await line(/^sigint$/);
    await writeFile(join(root, 'go'), '');
    assert.equal(await line(/^(result|error) /), 'result "finished"', lines.join('\n'));
  });
});
