import { Redis, type RedisOptions } from 'ioredis';

/**
 * One place that turns a Redis URL into ioredis connections, so every component uses the same
 * settings. BullMQ workers need `maxRetriesPerRequest: null` (blocking commands must wait
 * out a reconnect instead of failing the job); producers use the same, trading fail-fast for
 * "nothing submitted is lost while Redis restarts".
 */
export function createRedis(url: string, options: RedisOptions = {}): Redis {
  return new Redis(url, { maxRetriesPerRequest: null, lazyConnect: false, ...options });
}

/** `redis://user:secret@host:6379/0` → `redis://user:***@host:6379/0`, safe for logs and errors. */
export function redactRedisUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) {
      parsed.password = '***';
    }
    return parsed.toString();
  } catch {
    return '[unparseable redis url]';
  }
}
