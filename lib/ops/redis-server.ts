/**
 * Starts a private `redis-server` from PATH on a free loopback port: the embedded default of
 * `tydra dev`, and the server the test suite runs against. It never touches another Redis.
 */
import { mkdir } from 'node:fs/promises';
import { createServer } from 'node:net';

import { execa, type ResultPromise } from 'execa';
import { Redis } from 'ioredis';

import { TydraError } from '../core/errors.js';

export interface RedisServerOptions {
  /** Folder for its data (append-only file). Created if missing. */
  dir: string;
  /** TCP port on 127.0.0.1. @defaultValue a free port */
  port?: number;
  /** Keep data across restarts in an append-only file. @defaultValue true */
  persist?: boolean;
  /**
   * Run it in a process group of its own, so a terminal's Ctrl-C (sent to the whole foreground
   * group) does not stop it before its users have closed (`tydra dev` stops it last). It is
   * still stopped when this process exits (`exit` event) but, like any process outside our
   * group, not when this process is SIGKILLed: then it keeps running until stopped by hand.
   * @defaultValue false (same group: it gets our signals, and execa kills it when we exit)
   */
  ownProcessGroup?: boolean;
  /** On `stop()`, how long it may take to save and exit after SIGTERM before SIGKILL. @defaultValue 5,000 ms */
  stopGraceMs?: number;
}

export interface RedisServer {
  url: string;
  port: number;
  /** Stops the server (SIGTERM, then SIGKILL) and waits for it to exit. */
  stop(): Promise<void>;
}

export const REDIS_INSTALL_HINT = 'install it with: apt-get install -y redis-server';

export async function startRedisServer(options: RedisServerOptions): Promise<RedisServer> {
  await mkdir(options.dir, { recursive: true });
  const port = options.port ?? (await freePort());
  const persist = options.persist ?? true;
  let server: ResultPromise;
  try {
    server = execa('redis-server', redisServerArgs(port, options.dir, persist), {
      reject: false,
      stdio: 'ignore',
      cleanup: true,
      detached: options.ownProcessGroup ?? false,
      forceKillAfterDelay: options.stopGraceMs ?? 5000,
    });
  } catch (error) {
    throw new TydraError(`Could not start redis-server: ${(error as Error).message}; ${REDIS_INSTALL_HINT}`);
  }
  const exited = server.then((result) => {
    if (
      (result as { code?: string }).code === 'ENOENT' ||
      (result as { failed?: boolean; exitCode?: number }).exitCode === undefined
    ) {
      throw new TydraError(`redis-server was not found on PATH; ${REDIS_INSTALL_HINT}`);
    }
    throw new TydraError(
      `redis-server exited early with code ${String((result as { exitCode?: number }).exitCode)} (is port ${port} free?)`,
    );
  });
  exited.catch(() => undefined);
  // execa's `cleanup` skips detached processes: stop it ourselves when this process exits.
  const killOnExit = (): void => void server.kill('SIGKILL');
  if (options.ownProcessGroup === true) {
    process.once('exit', killOnExit);
    void server.finally(() => process.removeListener('exit', killOnExit)).catch(() => undefined);
  }
  const url = `redis://127.0.0.1:${port}`;
  const gaveUp = new AbortController();
  try {
    await Promise.race([waitForPing(url, gaveUp.signal), exited]);
  } finally {
    // Stop polling when the server died early, or the loop would keep the process alive.
    gaveUp.abort();
  }
  return {
    url,
    port,
    stop: async () => {
      server.kill('SIGTERM');
      await server.catch(() => undefined);
    },
  };
}

function redisServerArgs(port: number, dir: string, persist: boolean): string[] {
  return [
    '--port',
    String(port),
    '--bind',
    '127.0.0.1',
    '--dir',
    dir,
    '--save',
    '',
    '--appendonly',
    persist ? 'yes' : 'no',
    // BullMQ requires noeviction: an evicted lock or job key silently loses work.
    '--maxmemory-policy',
    'noeviction',
    '--daemonize',
    'no',
  ];
}

async function waitForPing(url: string, signal: AbortSignal, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!signal.aborted) {
    const client = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
    client.on('error', () => undefined);
    try {
      await client.connect();
      await client.ping();
      return;
    } catch (error) {
      if (Date.now() > deadline) {
        throw new TydraError(
          `redis-server did not answer on ${url} within ${timeoutMs} ms: ${(error as Error).message}`,
        );
      }
      await new Promise((resolve) => setTimeout(resolve, 50));
    } finally {
      client.disconnect();
    }
  }
}

/** A TCP port free on 127.0.0.1 right now. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.unref();
    probe.on('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const address = probe.address();
      probe.close(() =>
        typeof address === 'object' && address !== null ? resolve(address.port) : reject(new Error('no port')),
      );
    });
  });
}
