/**
 * Validates what the runner sends back. The runner runs next to untrusted task code, so every
 * message is parsed as hostile input: a malformed one is a protocol error, never a crash.
 */
import { z } from 'zod';

import type { RunnerMessage } from '../protocol.js';

const unitIndex = z.number().int().nonnegative();

const runnerMessageSchema = z.discriminatedUnion('type', [
  z.strictObject({ type: z.literal('ready') }),
  z.strictObject({ type: z.literal('started') }),
  z.strictObject({
    type: z.literal('progress'),
    value: z.union([z.number().finite(), z.record(z.string(), z.unknown())]),
  }),
  z.strictObject({ type: z.literal('log'), line: z.string() }),
  z.strictObject({ type: z.literal('result'), value: z.unknown() }),
  z.strictObject({ type: z.literal('error'), name: z.string(), message: z.string(), stack: z.string().optional() }),
  z.strictObject({ type: z.literal('unit'), value: z.unknown() }),
  z.strictObject({ type: z.literal('unit-result'), index: unitIndex, value: z.unknown() }),
  z.strictObject({
    type: z.literal('unit-error'),
    index: unitIndex,
    name: z.string(),
    message: z.string(),
    stack: z.string().optional(),
  }),
]);

/** The messages only a phase of a parallel task sends (split: `unit`; work: `unit-result`, `unit-error`). */
export type PhaseRunnerMessage = Extract<RunnerMessage, { type: 'unit' | 'unit-result' | 'unit-error' }>;

/** The message in `line`, or undefined when it is not a valid runner message. */
export function parseRunnerMessage(line: string): RunnerMessage | undefined {
  let raw: unknown;
  try {
    raw = JSON.parse(line);
  } catch {
    return undefined;
  }
  const parsed = runnerMessageSchema.safeParse(raw);
  return parsed.success ? parsed.data : undefined;
}
