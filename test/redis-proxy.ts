/**
 * A TCP proxy in front of the test Redis that can lose the reply to one command, as a Redis
 * restart or a process killed at the wrong moment does: the command reaches Redis and runs, its
 * client never hears of it. Only the processes given the proxy's URL go through it.
 */
import { createServer, Socket } from 'node:net';

import { defer, redisUrl } from './helpers.js';

export interface RedisProxy {
  /** The test Redis's URL with the proxy's port. */
  url: string;
  /**
   * From the first client command that matches `request` (a RESP text pattern) on, nothing Redis
   * sends back on that connection reaches its client. Resolves once such a command was sent on.
   */
  holdRepliesAfter(request: RegExp): Promise<void>;
  /** Closes every held connection: its client sees the connection drop (and reconnects). */
  dropHeld(): void;
}

export async function startRedisProxy(): Promise<RedisProxy> {
  const target = new URL(redisUrl());
  const held = new Set<{ client: Socket; upstream: Socket }>();
  let watch: { request: RegExp; matched: () => void } | undefined;
  const pairs = new Set<{ client: Socket; upstream: Socket }>();
  const server = createServer((client) => {
    const upstream = new Socket();
    upstream.connect(Number(target.port), target.hostname);
    const pair = { client, upstream };
    pairs.add(pair);
    // The text sent so far (its tail): a command may come in several chunks.
    let sent = '';
    client.on('data', (chunk) => {
      upstream.write(chunk);
      if (watch !== undefined && !held.has(pair)) {
        sent = (sent + chunk.toString('latin1')).slice(-65_536);
        if (watch.request.test(sent)) {
          held.add(pair);
          watch.matched();
          watch = undefined;
        }
      }
    });
    upstream.on('data', (chunk) => {
      if (!held.has(pair)) {
        client.write(chunk);
      }
    });
    const close = (): void => {
      pairs.delete(pair);
      held.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    client.on('error', close).on('close', close);
    upstream.on('error', close).on('close', close);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  defer(
    () =>
      new Promise((resolve) => {
        for (const { client, upstream } of pairs) {
          client.destroy();
          upstream.destroy();
        }
        server.close(resolve);
      }),
  );
  const address = server.address();
  const url = new URL(target);
  url.hostname = '127.0.0.1';
  url.port = String(typeof address === 'object' && address !== null ? address.port : 0);
  return {
    url: url.toString(),
    holdRepliesAfter: (request) => new Promise((resolve) => (watch = { request, matched: resolve })),
    dropHeld: () => {
      for (const { client, upstream } of [...held]) {
        client.destroy();
        upstream.destroy();
      }
    },
  };
}
