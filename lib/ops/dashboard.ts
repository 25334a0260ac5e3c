/**
 * Bull Board over every tydra queue: `tasks`, each node's `node.<id>` and `maintenance`, kept
 * current as nodes come and go (the registry is re-read every `refreshMs` and the boards' queue
 * lists replaced). Two boards over the same queues, one per role (see `board-queues.ts`): the
 * gate (`dashboard-auth.ts`) authenticates each request and hands it to its role's board.
 * Dashboard access is Redis access: beyond loopback the options refuse to start without users.
 */
import type { Server } from 'node:http';

import { createBullBoard } from '@bull-board/api';
import { ExpressAdapter } from '@bull-board/express';
import { Queue } from 'bullmq';
import express from 'express';
import type { Redis } from 'ioredis';

import type { Logger } from '../core/logger.js';
import { NodeRegistry } from '../cluster/node-registry.js';
import { boardAdapter, boardQueueNames } from './board-queues.js';
import { adminOnly, authenticate, type DashboardLocals, loopbackHostsOnly, sameOrigin } from './dashboard-auth.js';
import {
  type CompiledDashboardOptions,
  compileDashboardOptions,
  type DashboardOptions,
  type DashboardRole,
} from './dashboard-options.js';
import { RUN_PRUNE_NOW_PATH, runPruneNow } from './run-prune-now.js';
import { TYDRA_PAGES_PATH, tydraPages } from './tydra-pages.js';
import { Tydra } from '../client/client.js';
import { nodeQueueName } from '../../queues/node.js';
import { MAINTENANCE_QUEUE } from '../../queues/maintenance.js';
import { QUIT_MS, settlesWithin } from '../core/bounded-close.js';
import { createRedis, logErrors, watchConnection } from '../redis/connection.js';
import { dropConnections } from '../redis/force-disconnect.js';

/** How long the dashboard's graceful close may take before it force-closes. */
const CLOSE_MS = 3000;

const ROLES: DashboardRole[] = ['admin', 'read-only'];

interface RoleBoard {
  board: ReturnType<typeof createBullBoard>;
  router: express.Router;
}

function createRoleBoard(role: DashboardRole): RoleBoard {
  const serverAdapter = new ExpressAdapter();
  serverAdapter.setBasePath('/');
  const board = createBullBoard({
    queues: [],
    serverAdapter,
    options: {
      uiConfig: {
        boardTitle: role === 'admin' ? 'tydra' : 'tydra (read-only)',
        sortQueues: false,
        jobDetails: { defaultTab: 'Logs' },
        miscLinks: [
          { text: 'Nodes', url: `${TYDRA_PAGES_PATH}/nodes` },
          { text: 'Packages', url: `${TYDRA_PAGES_PATH}/packages` },
        ],
      },
    },
  });
  return { board, router: serverAdapter.getRouter() as express.Router };
}

export class Dashboard {
  readonly options: CompiledDashboardOptions;
  private readonly logger: Logger;
  private readonly redis: Redis;
  private readonly queues = new Map<string, Queue>();
  private server: Server | undefined;
  private timer: NodeJS.Timeout | undefined;
  private readonly boards = new Map<DashboardRole, RoleBoard>();
  private closing: Promise<void> | undefined;
  /** The client behind the tydra pages (statuses, cancel, packages), on its own connection. */
  private tydra: Tydra | undefined;
  /** The URL the dashboard answers on, once started. */
  url = '';

  constructor(options: DashboardOptions = {}) {
    this.options = compileDashboardOptions(options);
    this.logger = this.options.logger.child({ component: 'dashboard' });
    this.redis = createRedis(this.options.redisUrl);
    watchConnection(this.redis, this.logger, 'dashboard');
  }

  async start(): Promise<string> {
    for (const role of ROLES) {
      this.boards.set(role, createRoleBoard(role));
    }
    await this.refresh();
    this.timer = setInterval(() => void this.refresh(), this.options.refreshMs);

    const app = express();
    app.disable('x-powered-by');
    if (this.options.users.length === 0 && !this.options.insecureNoAuth) {
      app.use(loopbackHostsOnly());
    }
    app.use(authenticate(this.options.users));
    app.use(sameOrigin());
    app.put(
      RUN_PRUNE_NOW_PATH,
      adminOnly(),
      runPruneNow(() => this.queues.get(MAINTENANCE_QUEUE)),
    );
    this.tydra = new Tydra({ redis: this.options.redisUrl, logger: this.logger });
    app.use(
      TYDRA_PAGES_PATH,
      tydraPages({
        tydra: this.tydra,
        nodes: () => new NodeRegistry(this.redis).list(),
        activeJobs: async (nodeId) => this.queues.get(nodeQueueName(nodeId))?.getActiveCount(),
      }),
    );
    app.use((req, res: express.Response<unknown, DashboardLocals>, next) => {
      const board = this.boards.get(res.locals.role);
      if (board === undefined) {
        next(new Error(`internal error: no board for role ${res.locals.role}; please file an issue`));
        return;
      }
      board.router(req, res, next);
    });
    this.server = await new Promise<Server>((resolve, reject) => {
      const server = app.listen(this.options.port, this.options.host, () => resolve(server));
      server.once('error', reject);
    });
    const address = this.server.address();
    const port = typeof address === 'object' && address !== null ? address.port : this.options.port;
    const host = this.options.host.includes(':') ? `[${this.options.host}]` : this.options.host;
    this.url = `http://${host}:${port}/`;
    const roles = this.options.users.map((user) => user.role);
    if (this.options.insecureNoAuth) {
      this.logger.warn(
        { dashboardUrl: this.url },
        'the dashboard is served WITHOUT authentication (--insecure-no-auth)',
      );
    }
    this.logger.info(
      { dashboardUrl: this.url, roles: roles.length > 0 ? roles.join(',') : 'none (open)' },
      'dashboard started',
    );
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
      const wanted = boardQueueNames(nodes.map((node) => node.id));
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
      const ordered = wanted.flatMap((name) => this.queues.get(name) ?? []);
      for (const [role, { board }] of this.boards) {
        board.replaceQueues(ordered.map((queue) => boardAdapter(queue, role)));
      }
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
    await this.tydra?.close();
    await this.redis.quit().catch(() => this.redis.disconnect());
  }
}
