/**
 * removeStaleNetworkFolders: the network folder of a node process that is gone goes; a live
 * process's, another user's, a symlink and names that are not ours stay.
 */
import assert from 'node:assert/strict';
import { chown, mkdir, readdir, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

import { execa } from 'execa';

import { networkFolderPrefix, removeStaleNetworkFolders } from '../../../../sandbox/launcher/network/stale-folders.js';
import { processMark } from '../../../../sandbox/launcher/process-mark.js';
import { tempDir } from '../../../helpers.js';

describe('stale network folders', () => {
  it("removes a dead node process's folder with its content, and leaves everything else", async () => {
    const dir = await tempDir();
    const crashed = execa('sleep', ['600'], { reject: false });
    const deadPrefix = `tydra-net-${processMark(crashed.pid ?? 0).replace(':', '_')}-`;
    crashed.kill('SIGKILL');
    await crashed; // reaped: its pid and start time name no process now
    await mkdir(join(dir, `${deadPrefix}dead1`, 'sandbox'), { recursive: true });
    await writeFile(join(dir, `${deadPrefix}dead1`, 'sandbox', 'socket-file'), '');
    await mkdir(join(dir, `${networkFolderPrefix()}live`));
    await mkdir(join(dir, `${deadPrefix}others`));
    await chown(join(dir, `${deadPrefix}others`), 65534, 65534);
    await symlink('/etc', join(dir, `${deadPrefix}link`));
    await mkdir(join(dir, 'tydra-net-old-style'));
    const removed = await removeStaleNetworkFolders(dir);
    assert.deepEqual(removed, [join(dir, `${deadPrefix}dead1`)]);
    const left = [`${deadPrefix}link`, `${deadPrefix}others`, `${networkFolderPrefix()}live`, 'tydra-net-old-style'];
    assert.deepEqual((await readdir(dir)).sort(), left.sort());
  });

  it('names this process in the prefix, as its network folder uses it', () => {
    assert.equal(networkFolderPrefix(), `tydra-net-${processMark(process.pid).replace(':', '_')}-`);
  });
});
