/**
 * Per-TaskInstance environment variables (`submit(…, { env })`, `tydra run --env NAME=value`):
 * the rules of what a submission may set, checked by the client at submit and again by the node
 * on the job data it reads (job data can be written by anyone with Redis access).
 */
import { z } from 'zod';

/** Largest value of one variable, in UTF-8 bytes. */
export const MAX_ENV_VALUE_BYTES = 4 * 1024;
/** Largest total of every name and value of one TaskInstance, in UTF-8 bytes. */
export const MAX_ENV_TOTAL_BYTES = 64 * 1024;
/** What a name looks like: upper case, digits and `_`, starting with a letter, at most 64 characters. */
export const ENV_NAME_PATTERN = /^[A-Z][A-Z0-9_]{0,63}$/;

/**
 * Names tydra sets in every sandbox, or that would change how tydra's runner runs (Node's own
 * options, the dynamic loader's): a submission may not set them.
 */
const RESERVED_NAMES = new Set(['PATH', 'HOME', 'TMPDIR', 'LANG', 'PWD', 'NODE_OPTIONS', 'NODE_PATH']);
const RESERVED_PREFIXES = ['TYDRA_', 'LD_'];

export function isReservedEnvName(name: string): boolean {
  return RESERVED_NAMES.has(name) || RESERVED_PREFIXES.some((prefix) => name.startsWith(prefix));
}

const byteLength = (text: string): number => Buffer.byteLength(text, 'utf8');

/** `{ NAME: 'value' }` as a submission may give it; every message names the variable at fault. */
export const taskEnvSchema = z.record(z.string(), z.string()).superRefine((env, ctx) => {
  let total = 0;
  for (const [name, value] of Object.entries(env)) {
    total += byteLength(name) + byteLength(value);
    if (!ENV_NAME_PATTERN.test(name)) {
      ctx.addIssue({ code: 'custom', path: [name], message: `a name matching ${ENV_NAME_PATTERN.source}` });
    } else if (isReservedEnvName(name)) {
      ctx.addIssue({
        code: 'custom',
        path: [name],
        message:
          'a name tydra does not set itself (not PATH, HOME, TMPDIR, LANG, PWD, NODE_OPTIONS, NODE_PATH, TYDRA_*, LD_*)',
      });
    } else if (byteLength(value) > MAX_ENV_VALUE_BYTES) {
      ctx.addIssue({ code: 'custom', path: [name], message: `a string of at most ${MAX_ENV_VALUE_BYTES} bytes` });
    } else if (value.includes('\0')) {
      // An argv string cannot hold NUL: bwrap would never see the value.
      ctx.addIssue({ code: 'custom', path: [name], message: 'a string without NUL characters' });
    }
  }
  if (total > MAX_ENV_TOTAL_BYTES) {
    ctx.addIssue({ code: 'custom', message: `at most ${MAX_ENV_TOTAL_BYTES} bytes of names and values in all` });
  }
});
export type TaskEnv = z.infer<typeof taskEnvSchema>;
