import assert from 'node:assert/strict';

import { buildBwrapArgs, procCoverArgs } from '../../../sandbox/launcher/bwrap-args.js';

/** bwrap flags that create a mount or a mount point; `--remount-ro /` must come after all of them. */
const MOUNT_OPS = new Set(['--ro-bind', '--ro-bind-try', '--bind', '--symlink', '--proc', '--dev', '--tmpfs', '--dir']);

describe('bwrap argv', () => {
  const argv = buildBwrapArgs(
    {
      packageDir: '/cache/p/0123',
      runtimeDir: '/opt/runtime',
      nodeBinary: '/opt/node/bin/node',
      scratchBytes: 1024 * 1024,
    },
    {},
    ['true'],
  );

  it('covers the host-wide parts of /proc read-only, right after mounting it', () => {
    const proc = argv.indexOf('--proc');
    assert.deepEqual(argv.slice(proc, proc + 2 + procCoverArgs().length), ['--proc', '/proc', ...procCoverArgs()]);
    assert.deepEqual(procCoverArgs(), [
      '--ro-bind-try',
      '/proc/sys',
      '/proc/sys',
      '--ro-bind-try',
      '/proc/sysrq-trigger',
      '/proc/sysrq-trigger',
      '--ro-bind-try',
      '/proc/irq',
      '/proc/irq',
      '--ro-bind-try',
      '/proc/bus',
      '/proc/bus',
    ]);
  });

  it('remounts the root read-only after the last mount', () => {
    const remount = argv.indexOf('--remount-ro');
    assert.equal(argv[remount + 1], '/');
    const lastMount = argv
      .slice(0, argv.indexOf('--'))
      .reduce((last, arg, index) => (MOUNT_OPS.has(arg) ? index : last), -1);
    assert.ok(remount > lastMount, `--remount-ro at ${remount}, last mount at ${lastMount}`);
  });

  it('gives /tmp and /dev/shm a tmpfs of the scratch size each, and remounts /dev read-only', () => {
    for (const folder of ['/tmp', '/dev/shm']) {
      const at = argv.findIndex((arg, index) => arg === folder && argv[index - 1] === '--tmpfs');
      assert.deepEqual(argv.slice(at - 3, at + 1), ['--size', String(1024 * 1024), '--tmpfs', folder]);
      assert.ok(at > argv.indexOf('--dev'), `${folder} is mounted after /dev is made`);
    }
    const remounts = argv.flatMap((arg, index) => (arg === '--remount-ro' ? [argv[index + 1]] : []));
    assert.deepEqual(remounts, ['/', '/dev']);
  });

  it("puts a task's network mounts before the root turns read-only (bwrap must create their mount points)", () => {
    const extraMounts = [
      '--ro-bind',
      '/tmp/tydra-net/x',
      '/run/tydra-net',
      '--ro-bind',
      '/tmp/tydra-net/x/hosts',
      '/etc/hosts',
    ];
    const withNetwork = buildBwrapArgs(
      { packageDir: '/cache/p/0123', runtimeDir: '/opt/runtime', scratchBytes: 1024 * 1024, extraMounts },
      {},
      ['true'],
    );
    const at = withNetwork.indexOf('/run/tydra-net');
    assert.deepEqual(withNetwork.slice(at - 2, at + 4), extraMounts);
    assert.ok(at < withNetwork.indexOf('--remount-ro'));
  });
});
