/**
 * The `/metrics` endpoint of a master or a node (`metricsPort`): a bare node:http server, so a
 * role that serves no web page pulls in no web framework. It binds to loopback unless told
 * otherwise (`metricsHost`) and has no authentication: the numbers name packages, tasks and nodes.
 */
import { createServer, type Server } from 'node:http';

import type { Registry } from 'prom-client';

import type { Logger } from './logger.js';

/** A running metrics endpoint. */
export interface MetricsServer {
  /** `http://host:port/metrics`, with the port bound (useful when asked for port 0). */
  readonly url: string;
  /** Stops listening and drops open connections at once (a scrape is cheap to repeat). */
  close(): Promise<void>;
}

/** Serves `GET /metrics` (and `HEAD`) with `registry`'s text; everything else is 404. */
export async function startMetricsServer(options: {
  registry: Registry;
  port: number;
  host: string;
  logger: Logger;
}): Promise<MetricsServer> {
  const { registry, logger } = options;
  const server = createServer((req, res) => {
    const path = (req.url ?? '').split('?')[0];
    if (path !== '/metrics' || (req.method !== 'GET' && req.method !== 'HEAD')) {
      res.writeHead(404, { 'content-type': 'text/plain; charset=utf-8' }).end('not found: try GET /metrics\n');
      return;
    }
    registry.metrics().then(
      (text) => res.writeHead(200, { 'content-type': registry.contentType }).end(req.method === 'HEAD' ? '' : text),
      (error: Error) => {
        logger.warn({ err: error.message }, 'could not collect the metrics');
        res.writeHead(500, { 'content-type': 'text/plain; charset=utf-8' }).end('could not collect the metrics\n');
      },
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  server.on('error', (error) => logger.warn({ err: error.message }, 'metrics server error'));
  const address = server.address();
  const port = typeof address === 'object' && address !== null ? address.port : options.port;
  const host = options.host.includes(':') ? `[${options.host}]` : options.host;
  const url = `http://${host}:${port}/metrics`;
  logger.info({ metricsUrl: url }, 'serving metrics');
  return { url, close: () => closeServer(server) };
}

function closeServer(server: Server): Promise<void> {
  return new Promise((resolve) => {
    server.close(() => resolve());
    server.closeAllConnections();
  });
}

/** The role's endpoint when its options ask for one (`metricsPort`), else undefined. */
export async function serveMetricsIfAsked(
  options: { metrics: Registry; metricsPort: number | undefined; metricsHost: string },
  logger: Logger,
): Promise<MetricsServer | undefined> {
  if (options.metricsPort === undefined) {
    return undefined;
  }
  return startMetricsServer({
    registry: options.metrics,
    port: options.metricsPort,
    host: options.metricsHost,
    logger,
  });
}
