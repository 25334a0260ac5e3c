/**
 * The zod schema of a Redis target (a URL, or a Sentinel deployment as an object), apart from
 * `redis-url.ts` so that the CLI's `--help`, which needs the URL helpers, loads no zod.
 */
import { z } from 'zod';

import {
  isClusterUrl,
  isSentinelUrl,
  parseClusterUrl,
  parseSentinelUrl,
  type RedisSentinelTarget,
  sentinelUrl,
} from './redis-url.js';

const sentinelTargetSchema = z.strictObject({
  sentinels: z
    .array(z.strictObject({ host: z.string().min(1), port: z.number().int().min(1).max(65535) }))
    .min(1, 'at least one sentinel'),
  name: z.string().min(1),
  username: z.string().optional(),
  password: z.string().optional(),
  db: z.number().int().nonnegative().optional(),
});

function checkUrl(url: string, context: z.RefinementCtx): void {
  const parse = isSentinelUrl(url) ? parseSentinelUrl : isClusterUrl(url) ? parseClusterUrl : undefined;
  if (parse !== undefined) {
    try {
      parse(url);
    } catch (error) {
      context.addIssue({ code: 'custom', message: (error as Error).message });
    }
  } else if (!/^rediss?:\/\//.test(url)) {
    context.addIssue({
      code: 'custom',
      message: 'expected a redis://, rediss://, redis-sentinel:// or redis-cluster:// URL',
    });
  }
}

/**
 * A Redis URL (`redis://`, `rediss://`, `redis-sentinel://`, `redis-cluster://`) or a Sentinel object
 * (`{ sentinels, name, password? }`), validated and always compiled to a URL string, so every
 * component past its options sees one form. Not a `z.union`: its errors would only say
 * "invalid input" instead of what is wrong with the URL or the object.
 */
export const redisTargetSchema = z.custom<string | RedisSentinelTarget>().transform((value, context) => {
  if (typeof value === 'string') {
    checkUrl(value, context);
    return value;
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    context.addIssue({ code: 'custom', message: 'expected a Redis URL or a { sentinels, name } object' });
    return z.NEVER;
  }
  const parsed = sentinelTargetSchema.safeParse(value);
  if (!parsed.success) {
    for (const issue of parsed.error.issues) {
      context.addIssue({ code: 'custom', message: issue.message, path: issue.path });
    }
    return z.NEVER;
  }
  return sentinelUrl(parsed.data);
});
