/** `tydra schedule add|ls|rm`: TaskInstances on a cron pattern or every so often, made by the masters. */
import { type Command, Option } from 'commander';

import type { ScheduleInfo } from '../../lib/index.js';
import { InvalidOptionError } from '../../lib/core/errors.js';
import { type ClientFlags, withClient } from '../cli/common.js';
import { readInput } from '../cli/input.js';
import { collectEnv } from '../cli/parse.js';
import { clientCommand } from './client.js';

type Flags = ClientFlags & { json?: boolean };
type AddFlags = Flags & {
  cron?: string;
  tz?: string;
  every?: string;
  input?: string;
  inputFile?: string;
  env?: Record<string, string>;
  secret?: Record<string, string>;
};

export function registerScheduleCommands(program: Command): void {
  const schedule = program
    .command('schedule')
    .description('TaskInstances on a cron pattern or every so often (run by the masters)');
  clientCommand(schedule, 'add', 'add (or replace) schedule NAME of REF (name/task: the latest version at each firing)')
    .argument('<name>', 'schedule name (letters, digits, . _ -)')
    .argument('<ref>', 'name/task or name@sha1/task')
    .option('--cron <pattern>', 'cron pattern, e.g. "*/5 * * * *" (a sixth, leading field is seconds)')
    .option('--tz <zone>', 'IANA time zone of --cron, e.g. Europe/Berlin')
    .option('--every <duration>', 'period instead of --cron: 30s, 5m, 1h (at least 1s)')
    .addOption(new Option('--input <json>', 'input JSON of each TaskInstance').conflicts('inputFile'))
    .option('--input-file <file>', 'read the input JSON (UTF-8) from a file')
    .option('--env <NAME=value>', "environment variable in each firing's sandbox, repeatable", collectEnv)
    .option(
      '--secret <NAME=STORED>',
      'environment variable NAME of each firing gets stored secret STORED (`tydra secret set`), repeatable',
      collectEnv,
    )
    .action(async (name: string, ref: string, flags: AddFlags) => {
      checkWhen(flags);
      const input = await readInput(flags);
      await withClient(flags, async (tydra) => {
        const added = await tydra.addSchedule(name, ref, {
          input,
          ...(flags.cron !== undefined ? { cron: flags.cron } : {}),
          ...(flags.tz !== undefined ? { tz: flags.tz } : {}),
          ...(flags.every !== undefined ? { every: flags.every } : {}),
          ...(flags.env !== undefined ? { env: flags.env } : {}),
          ...(flags.secret !== undefined ? { secrets: flags.secret } : {}),
        });
        process.stdout.write(flags.json ? `${JSON.stringify(added)}\n` : `${describe(added)}\n`);
      });
    });
  clientCommand(schedule, 'ls', 'list schedules and when each fires next').action((flags: Flags) =>
    withClient(flags, async (tydra) => {
      const schedules = await tydra.listSchedules();
      const text = flags.json ? JSON.stringify(schedules, null, 2) : schedules.map(describe).join('\n');
      process.stdout.write(text === '' ? '' : `${text}\n`);
    }),
  );
  clientCommand(schedule, 'rm', 'remove schedule NAME (the TaskInstances it made stay)')
    .argument('<name>', 'schedule name')
    .action((name: string, flags: Flags) =>
      withClient(flags, async (tydra) => {
        if (!(await tydra.removeSchedule(name))) {
          process.stderr.write(`no schedule named ${name}\n`);
          process.exitCode = 1;
          return;
        }
        process.stdout.write(flags.json ? `${JSON.stringify({ removed: name })}\n` : `removed schedule ${name}\n`);
      }),
    );
}

function describe(schedule: ScheduleInfo): string {
  const when =
    schedule.every !== undefined
      ? `every ${schedule.every} ms`
      : `cron "${schedule.cron ?? '?'}"${schedule.tz ? ` (${schedule.tz})` : ''}`;
  const next = schedule.next === undefined ? '' : `, next ${new Date(schedule.next).toISOString()}`;
  const env = schedule.env === undefined ? '' : `  env ${Object.keys(schedule.env).join(',')}`;
  const secrets = schedule.secrets === undefined ? '' : `  secrets ${Object.keys(schedule.secrets).join(',')}`;
  return `${schedule.name}  ${schedule.ref}  ${when}${next}  input ${JSON.stringify(schedule.input)}${env}${secrets}`;
}

/** The client checks these too, in its option names (`cron`, `every`): say it in the flags' here. */
function checkWhen(flags: AddFlags): void {
  if ((flags.cron === undefined) === (flags.every === undefined)) {
    throw new InvalidOptionError(
      `Expected exactly one of --cron or --every, got ${flags.cron === undefined ? 'neither' : 'both'}`,
    );
  }
  if (flags.tz !== undefined && flags.cron === undefined) {
    throw new InvalidOptionError(`Expected --tz only with --cron, got --tz ${flags.tz} with --every`);
  }
}
