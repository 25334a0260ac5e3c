/**
 * What a `--redis` value names: one Redis server (`redis://`, `rediss://`), a Sentinel
 * deployment (`redis-sentinel://`) or a Redis Cluster (`redis-cluster://`). Pure parsing, so option schemas can validate the value and
 * `lib/redis/connection.ts` can build the matching ioredis connection from it.
 *
 * The Sentinel form:
 *
 *     redis-sentinel://[[USER]:PASSWORD@]HOST:PORT[,HOST:PORT…][/DB]#MASTERNAME
 *
 * e.g. `redis-sentinel://:s3cret@10.0.0.1:26379,10.0.0.2:26379,10.0.0.3:26379#mymaster`. The hosts
 * are the sentinels (not the Redis servers); MASTERNAME is the name they monitor (`sentinel
 * monitor MASTERNAME …`); USER and PASSWORD authenticate to the primary and its replicas (not to
 * the sentinels), percent-encoded like any URL's. A `/` before the `#` is allowed.
 *
 * The Cluster form:
 *
 *     redis-cluster://[[USER]:PASSWORD@]HOST:PORT[,HOST:PORT…]
 *
 * e.g. `redis-cluster://:s3cret@10.0.0.1:7000,10.0.0.2:7000`. The hosts are seed nodes of the
 * cluster (one reachable is enough: ioredis learns the others and the slot map from it); the port
 * defaults to 6379. A cluster has only database 0, so there is no `/DB`. Each tydra namespace is
 * one hash slot of it (`lib/redis/keys.ts`).
 */

import { InvalidOptionError } from './errors.js';

export interface SentinelAddress {
  host: string;
  port: number;
}

/** A Sentinel deployment, as the client's `redis` option takes it and as a URL parses into. */
export interface RedisSentinelTarget {
  /** The sentinels to ask where the primary is; one reachable sentinel is enough. */
  sentinels: SentinelAddress[];
  /** The master name the sentinels monitor. */
  name: string;
  /** ACL user of the primary and replicas. */
  username?: string;
  /** Password of the primary and replicas. */
  password?: string;
  /** Database number. @defaultValue 0 */
  db?: number;
}

export const SENTINEL_SCHEME = 'redis-sentinel:';
const DEFAULT_SENTINEL_PORT = 26379;

/** A Redis Cluster, as a `redis-cluster://` URL parses into. */
export interface RedisClusterTarget {
  /** Seed nodes: any reachable one tells ioredis the rest of the cluster. */
  nodes: SentinelAddress[];
  /** ACL user of every node. */
  username?: string;
  /** Password of every node. */
  password?: string;
}

export const CLUSTER_SCHEME = 'redis-cluster:';
const DEFAULT_REDIS_PORT = 6379;

/** Says what is wrong with a Redis URL; the message names what was expected. */
export class RedisUrlError extends InvalidOptionError {}

export function isSentinelUrl(url: string): boolean {
  return url.startsWith(`${SENTINEL_SCHEME}//`);
}

export function isClusterUrl(url: string): boolean {
  return url.startsWith(`${CLUSTER_SCHEME}//`);
}

const SENTINEL_URL = /^redis-sentinel:\/\/(?:(?<auth>[^@/#]*)@)?(?<hosts>[^@/#?]+)(?:\/(?<db>\d*))?(?:#(?<name>.*))?$/;

/** Parses a `redis-sentinel://` URL; throws a {@link RedisUrlError} saying what is wrong. */
export function parseSentinelUrl(url: string): RedisSentinelTarget {
  const expected = 'expected redis-sentinel://[[USER]:PASSWORD@]HOST:PORT[,HOST:PORT…][/DB]#MASTERNAME';
  const match = SENTINEL_URL.exec(url);
  if (match?.groups === undefined) {
    throw new RedisUrlError(`${expected}, got a URL that does not have that shape`);
  }
  const { auth, hosts = '', db, name } = match.groups;
  if (name === undefined || name === '') {
    throw new RedisUrlError(`${expected}: the #MASTERNAME is missing`);
  }
  const target: RedisSentinelTarget = {
    sentinels: hosts.split(',').map((address) => parseAddress(address, expected)),
    name: decodeURIComponent(name),
  };
  Object.assign(target, parseAuth(auth));
  if (db !== undefined && db !== '') {
    target.db = Number(db);
  }
  return target;
}

/** `USER:PASSWORD` (percent-encoded) → the non-empty ones of `{ username, password }`. */
function parseAuth(auth: string | undefined): { username?: string; password?: string } {
  if (auth === undefined) {
    return {};
  }
  const colon = auth.indexOf(':');
  const username = decodeURIComponent(colon < 0 ? auth : auth.slice(0, colon));
  const password = colon < 0 ? '' : decodeURIComponent(auth.slice(colon + 1));
  return { ...(username !== '' ? { username } : {}), ...(password !== '' ? { password } : {}) };
}

/** `user:pass@` of a URL, percent-encoded; empty without either. */
function formatAuth(username: string | undefined, password: string | undefined): string {
  const user = encodeURIComponent(username ?? '');
  return password !== undefined ? `${user}:${encodeURIComponent(password)}@` : user ? `${user}@` : '';
}

function formatHosts(addresses: readonly SentinelAddress[]): string {
  return addresses.map(({ host, port }) => `${host.includes(':') ? `[${host}]` : host}:${port}`).join(',');
}

function parseAddress(address: string, expected: string, defaultPort = DEFAULT_SENTINEL_PORT): SentinelAddress {
  // `[::1]:26379` for IPv6, `host:26379` otherwise; the port defaults to Sentinel's 26379 (Redis's 6379 in a cluster URL).
  const match = /^(?:\[(?<ip6>[^\]]+)\]|(?<host>[^:[\]]+))(?::(?<port>\d+))?$/.exec(address);
  const port = Number(match?.groups?.port ?? defaultPort);
  if (match?.groups === undefined || !Number.isInteger(port) || port < 1 || port > 65535) {
    throw new RedisUrlError(`${expected}: "${address}" is not a HOST:PORT`);
  }
  return { host: match.groups.ip6 ?? match.groups.host ?? '', port };
}

/** The `redis-sentinel://` URL of a target: how the client's object form travels as a URL. */
export function sentinelUrl(target: RedisSentinelTarget): string {
  const db = target.db !== undefined ? `/${target.db}` : '';
  const auth = formatAuth(target.username, target.password);
  return `${SENTINEL_SCHEME}//${auth}${formatHosts(target.sentinels)}${db}#${encodeURIComponent(target.name)}`;
}

const CLUSTER_URL = /^redis-cluster:\/\/(?:(?<auth>[^@/#]*)@)?(?<hosts>[^@/#?]+)\/?$/;

/** Parses a `redis-cluster://` URL; throws a {@link RedisUrlError} saying what is wrong. */
export function parseClusterUrl(url: string): RedisClusterTarget {
  const expected = 'expected redis-cluster://[[USER]:PASSWORD@]HOST:PORT[,HOST:PORT…]';
  const match = CLUSTER_URL.exec(url);
  if (match?.groups === undefined) {
    throw new RedisUrlError(
      `${expected} (no /DB: a cluster has only database 0), got a URL that does not have that shape`,
    );
  }
  const { auth, hosts = '' } = match.groups;
  return {
    nodes: hosts.split(',').map((address) => parseAddress(address, expected, DEFAULT_REDIS_PORT)),
    ...parseAuth(auth),
  };
}

/** The `redis-cluster://` URL of a target. */
export function clusterUrl(target: RedisClusterTarget): string {
  return `${CLUSTER_SCHEME}//${formatAuth(target.username, target.password)}${formatHosts(target.nodes)}`;
}

/**
 * `url` with `password` filled in when it has none (`TYDRA_REDIS_PASSWORD`, so a password need
 * not appear on a command line). A password already in the URL wins.
 */
export function withRedisPassword(url: string, password: string | undefined): string {
  if (password === undefined || password === '') {
    return url;
  }
  try {
    if (isSentinelUrl(url)) {
      const target = parseSentinelUrl(url);
      return target.password === undefined ? sentinelUrl({ ...target, password }) : url;
    }
    if (isClusterUrl(url)) {
      const target = parseClusterUrl(url);
      return target.password === undefined ? clusterUrl({ ...target, password }) : url;
    }
    const parsed = new URL(url);
    if (parsed.password === '') {
      parsed.password = encodeURIComponent(password);
    }
    return parsed.toString();
  } catch {
    // Left as it is: the option's validation says what is wrong with it, without the password.
    return url;
  }
}
