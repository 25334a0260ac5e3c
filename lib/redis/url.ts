/** Redis URLs in messages. Apart from the connections so the CLI's `--help` needs no ioredis. */
import {
  clusterUrl,
  isClusterUrl,
  isSentinelUrl,
  parseClusterUrl,
  parseSentinelUrl,
  sentinelUrl,
} from '../core/redis-url.js';

/**
 * `redis://user:secret@host:6379/0` → `redis://user:***@host:6379/0`, safe for logs and errors;
 * the same for `redis-sentinel://` and `redis-cluster://` URLs.
 */
export function redactRedisUrl(url: string): string {
  try {
    if (isSentinelUrl(url)) {
      const target = parseSentinelUrl(url);
      return sentinelUrl(target.password === undefined ? target : { ...target, password: '***' });
    }
    if (isClusterUrl(url)) {
      const target = parseClusterUrl(url);
      return clusterUrl(target.password === undefined ? target : { ...target, password: '***' });
    }
    const parsed = new URL(url);
    if (parsed.password) {
      parsed.password = '***';
    }
    return parsed.toString();
  } catch {
    return '[unparseable redis url]';
  }
}
