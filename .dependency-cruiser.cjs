/**
 * The module graph, enforced in `npm test` (`npm run check:deps`). Imports point down only:
 *
 *   bin ─► lib/ops ─► lib/{client,master,node} ─► lib/{packages,cluster}, sandbox ─► lib/redis, queues ─► lib/core
 *
 * Roles (client, master, node) never import each other; they meet only through Redis and the
 * queue contracts in `queues/`. The sandbox never sees Redis, packages or queues: it gets a
 * folder, a task entry and limits. `lib/core` imports nothing of ours.
 */
const layer = (from, allowed, comment) => ({
  name: `${from.replace(/[^a-z]+/g, '-').replace(/^-|-$/g, '')}-imports-down`,
  comment,
  severity: 'error',
  from: { path: `^${from}` },
  to: { path: '^(lib|queues|sandbox|bin)/', pathNot: `^(${allowed.join('|')})` },
});

module.exports = {
  forbidden: [
    { name: 'no-circular', severity: 'error', from: {}, to: { circular: true } },
    layer('lib/core/', ['lib/core/'], 'lib/core is the bottom: errors, options, limits, logger'),
    layer('queues/', ['queues/', 'lib/core/'], 'queue contracts import only lib/core'),
    layer('lib/redis/', ['lib/redis/', 'lib/core/'], 'lib/redis: connections, keys and scripts over lib/core'),
    layer('sandbox/', ['sandbox/', 'lib/core/'], 'the sandbox knows nothing of Redis, packages or queues'),
    layer('lib/packages/', ['lib/packages/', 'lib/redis/', 'lib/core/', 'queues/'], 'packages sit on redis and core'),
    layer(
      'lib/cluster/',
      ['lib/cluster/', 'lib/redis/', 'lib/core/', 'queues/'],
      'cluster-wide state (node registry, stopping a parallel task) sits on redis, queues and core',
    ),
    ...['client', 'master', 'node'].map((role) =>
      layer(
        `lib/${role}/`,
        [`lib/${role}/`, 'lib/packages/', 'lib/cluster/', 'lib/redis/', 'lib/core/', 'queues/', 'sandbox/'],
        `lib/${role} may import the layers below it, never another role or lib/ops`,
      ),
    ),
    layer('lib/ops/', ['lib/', 'queues/', 'sandbox/'], 'lib/ops composes roles; nothing in lib/ imports bin/'),
    {
      name: 'entry-point-only-from-outside',
      comment: 'lib/index.ts is the public entry point; lib/ itself imports modules directly',
      severity: 'error',
      from: { path: '^(lib|queues|sandbox)/' },
      to: { path: '^lib/index\\.ts$' },
    },
    {
      name: 'no-test-or-bench-from-source',
      severity: 'error',
      from: { path: '^(lib|queues|sandbox|bin)/' },
      to: { path: '^(test|bench)/' },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    tsConfig: { fileName: 'tsconfig.json' },
    tsPreCompilationDeps: true,
  },
};
