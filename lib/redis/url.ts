/** Redis URLs in messages. Apart from the connections so the CLI's `--help` needs no ioredis. */

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
