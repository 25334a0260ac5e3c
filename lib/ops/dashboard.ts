/**
 * Bull Board over every tydra queue: `tasks` and each node's `node.<id>`, kept current as nodes
 * come and go (the registry is re-read every `refreshMs` and the board's queue list replaced).
 * Bull Board has no authentication of its own; set `auth` (basic auth, compared in constant
 * time) whenever the dashboard listens beyond loopback: dashboard access is Redis access.
 */
import { timingSafeEqual } from 'node:crypto';
import type { Server } from 'node:http';

import { createBullBoard } from '@bull-board/api';
import { BullMQAdapter } from '@bull-board/api/bullMQAdapter';
import { ExpressAdapter } from '@bull-board/express';
import { Queue } from 'bullmq';
import express, { type NextFunction, type Request, type Response } from 'express';
import type { Redis } from 'ioredis';

import { MAINTENANCE_QUEUE } from '../../queues/maintenance.js';
import { nodeQueueName } from '../../queues/node.js';
import { TASKS_QUEUE } from '../../queues/tasks.js';
import type { Logger } from '../core/logger.js';
import { NodeRegistry } from '../cluster/node-registry.js';
import { type CompiledDashboardOptions, compileDashboardOptions, type DashboardOptions } from './dashboard-options.js';
import { QUIT_MS, settlesWithin } from '../core/bounded-close.js';
import { createRedis, logErrors, watchConnection } from '../redis/connection.js';
import { dropConnections } from '../redis/force-disconnect.js';

/** How long the dashboard's graceful close may take before it force-closes. */
const CLOSE_MS = 3000;

export class Dashboard {
  readonly options: CompiledDashboardOptions;
  private readonly logger: Logger;
  private readonly redis: Redis;
  private readonly queues = new Map<string, Queue>();
  private server: Server | undefined;
  private timer: NodeJS.Timeout | undefined;
  private board: ReturnType<typeof createBullBoard> | undefined;
  private closing: Promise<void> | undefined;
  /** The URL the dashboard answers on, once started. */
  url = '';

  constructor(options: DashboardOptions = {}) {
    this.options = compileDashboardOptions(options);
    this.logger = this.options.logger.child({ component: 'dashboard' });
    this.redis = createRedis(this.options.redisUrl);
    watchConnection(this.redis, this.logger, 'dashboard');
  }

  async start(): Promise<string> {
    const serverAdapter = new ExpressAdapter();
    serverAdapter.setBasePath('/');
    this.board = createBullBoard({ queues: [], serverAdapter, options: { uiConfig: { boardTitle: 'tydra' } } });
    await this.refresh();
    this.timer = setInterval(() => void this.refresh(), this.options.refreshMs);

    const app = express();
    app.disable('x-powered-by');
    if (this.options.auth) {
      app.use(basicAuth(this.options.auth));
    } else if (!isLoopback(this.options.host)) {
      this.logger.warn(
        { host: this.options.host },
        'the dashboard listens beyond loopback WITHOUT authentication; set TYDRA_DASHBOARD_USER and TYDRA_DASHBOARD_PASSWORD',
      );
    }
    app.use('/', serverAdapter.getRouter() as express.Router);
    this.server = await new Promise<Server>((resolve, reject) => {
      const server = app.listen(this.options.port, this.options.host, () => resolve(server));
      server.once('error', reject);
    });
    const address = this.server.address();
    const port = typeof address === 'object' && address !== null ? address.port : this.options.port;
    const host = this.options.host.includes(':') ? `[${this.options.host}]` : this.options.host;
    this.url = `http://${host}:${port}/`;
    this.logger.info({ url: this.url }, 'dashboard started');
    return this.url;
  }

  /** Names of the queues on the board right now. */
  get queueNames(): string[] {
    return [...this.queues.keys()];
  }

  /** Re-reads the node registry and replaces the board's queues. */
  async refresh(): Promise<void> {
    try {
      const nodes = await new NodeRegistry(this.redis).list();
      const wanted = [TASKS_QUEUE, MAINTENANCE_QUEUE, ...nodes.map((node) => nodeQueueName(node.id))];
      for (const name of wanted) {
        if (!this.queues.has(name)) {
          const queue = new Queue(name, { connection: this.redis });
          logErrors(queue, (error) => this.logger.warn({ err: error.message, queue: name }, 'queue error'));
          this.queues.set(name, queue);
        }
      }
      for (const [name, queue] of this.queues) {
        if (!wanted.includes(name)) {
          this.queues.delete(name);
          await queue.close();
        }
      }
      this.board?.replaceQueues([...this.queues.values()].map((queue) => new BullMQAdapter(queue, { delimiter: '.' })));
    } catch (error) {
      this.logger.warn({ err: (error as Error).message }, 'could not refresh the queue list');
    }
  }

  /**
   * Stops serving and closes its connections; what has not closed within {@link CLOSE_MS} (open
   * HTTP requests, a Redis that is gone) is force-closed. Resolves within 5 s whatever Redis
   * does (the dashboard has no drain timeout: it runs no work). Idempotent.
   */
  close(): Promise<void> {
    this.closing ??= this.closeInternal();
    return this.closing;
  }

  private async closeInternal(): Promise<void> {
    clearInterval(this.timer);
    const graceful = this.closeGracefully();
    if (!(await settlesWithin(graceful, CLOSE_MS))) {
      this.logger.warn('the dashboard did not close in time (is Redis down?): force-closing its connections');
      this.server?.closeAllConnections();
      dropConnections([...this.queues.values(), this.redis]);
      await settlesWithin(graceful, QUIT_MS);
    }
  }

  private async closeGracefully(): Promise<void> {
    const server = this.server;
    const serverClosed = new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
    // Idle keep-alive connections would hold `close` up; requests under way may finish.
    server?.closeIdleConnections();
    await serverClosed;
    await Promise.allSettled([...this.queues.values()].map((queue) => queue.close()));
    await this.redis.quit().catch(() => this.redis.disconnect());
  }
}

function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || host.startsWith('127.');
}

function basicAuth(credentials: { user: string; password: string }) {
  const expected = Buffer.from(`${credentials.user}:${credentials.password}`);
  return (req: Request, res: Response, next: NextFunction): void => {
    const header = req.headers.authorization ?? '';
    const given = header.startsWith('Basic ') ? Buffer.from(header.slice(6), 'base64') : Buffer.alloc(0);
    if (given.length === expected.length && timingSafeEqual(given, expected)) {
      next();
      return;
    }
    res.setHeader('WWW-Authenticate', 'Basic realm="tydra", charset="UTF-8"');
    res.status(401).send('authentication required');
  };
}
