/**
 * How tydra jobs read on the board: a card title that says what runs where
 * (`hello@8531753/greet · dev-2` instead of `task-instance` or `run`), and job data whose
 * timestamps are ISO times. Pure functions of the job as Bull Board passes it; job data is
 * writable by anyone with Redis access, so every field is checked and a job that does not fit
 * keeps its plain name.
 */
import { z } from 'zod';

import { nodeIdOfQueue } from './queue-names.js';

const titleFieldsSchema = z.object({
  package: z.object({ name: z.string().min(1), sha1: z.string().min(7) }),
  task: z.string().min(1),
  dispatch: z.object({ nodeId: z.string().min(1) }).optional(),
});

/** The card title of a job of `queueName` (`tasks` or `node.<id>`). */
export function jobTitle(queueName: string, job: { name?: string; data?: unknown }): string {
  const parsed = titleFieldsSchema.safeParse(job.data);
  if (!parsed.success) {
    return job.name ?? '';
  }
  const { package: pkg, task, dispatch } = parsed.data;
  const nodeId = nodeIdOfQueue(queueName) ?? dispatch?.nodeId;
  const title = `${pkg.name}@${pkg.sha1.slice(0, 7)}/${task}`;
  return nodeId === undefined ? title : `${title} · ${nodeId}`;
}

/** Epoch milliseconds from 2001 on: a smaller number under a time-like key is not a time. */
const EPOCH_MS_FLOOR = 1e12;

const isTimeKey = (key: string): boolean => key === 'at' || /[a-z]At$/.test(key);

/**
 * `data` with every epoch-millisecond time under a time-like key (`at`, `submittedAt`, …) shown
 * as an ISO string. The task's own `input` is shown as it is: its keys are the task's business.
 */
export function readableData(data: unknown): unknown {
  return mapTimes(data, (value) =>
    typeof value === 'number' && Number.isFinite(value) && value >= EPOCH_MS_FLOOR
      ? new Date(value).toISOString()
      : undefined,
  );
}

/**
 * `data` with each value under a time-like key replaced by `convert(value)` (unless that gives
 * undefined), at any depth; the task's own `input` is left as it is: its keys are the task's business.
 */
function mapTimes(data: unknown, convert: (value: unknown) => unknown): unknown {
  if (Array.isArray(data)) {
    return data.map((item) => mapTimes(item, convert));
  }
  if (typeof data !== 'object' || data === null) {
    return data;
  }
  return Object.fromEntries(
    Object.entries(data).map(([key, value]) => {
      if (key === 'input') {
        return [key, value];
      }
      const converted = isTimeKey(key) ? convert(value) : undefined;
      return [key, converted === undefined ? mapTimes(value, convert) : converted];
    }),
  );
}

/**
 * Progress as the board's percent ring reads it. The ring takes a number, or an object with a
 * numeric `progress`; tydra's object progress (see `queues/progress.ts`), and a task's own object
 * with a `percent`, carry `percent` instead. Such an object gains `progress` (the percent, within
 * 0..100) so the card shows a ring, and keeps every field for the Progress tab.
 */
export function readableProgress(progress: unknown): unknown {
  if (typeof progress !== 'object' || progress === null || Array.isArray(progress) || 'progress' in progress) {
    return progress;
  }
  const percent = (progress as { percent?: unknown }).percent;
  if (typeof percent !== 'number' || !Number.isFinite(percent)) {
    return progress;
  }
  return { progress: Math.min(100, Math.max(0, percent)), ...progress };
}

const ISO_TIME = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,3})?Z$/;

/**
 * The inverse of {@link readableData}: the board's "edit data" sends back what it showed, ISO
 * times included, and a TaskInstance's times are epoch milliseconds (the master refuses other
 * data). Every ISO time under a time-like key becomes a number again; `input` is left as it is.
 */
export function storedData(data: unknown): unknown {
  return mapTimes(data, (value) => (typeof value === 'string' && ISO_TIME.test(value) ? Date.parse(value) : undefined));
}
