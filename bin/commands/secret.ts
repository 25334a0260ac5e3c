/**
 * `tydra secret set|ls|rm`: secrets stored encrypted in Redis, given to the tasks that need them.
 * A value never comes from the command line (any user of the host can read it): `set` reads it
 * from stdin or `--from-file`.
 */
import { readFile } from 'node:fs/promises';

import type { Command } from 'commander';

import type { SecretInfo } from '../../lib/index.js';
import { type ClientFlags, withClient } from '../cli/common.js';
import { decodeUtf8 } from '../cli/input.js';
import { clientCommand } from './client.js';

type Flags = ClientFlags & { json?: boolean };
type SetFlags = Flags & { fromFile?: string };

export function registerSecretCommands(program: Command): void {
  const secret = program
    .command('secret')
    .description('secrets, stored encrypted (AES-256-GCM) and seen by tasks as environment variables');
  clientCommand(secret, 'set', 'set secret NAME from stdin (one trailing newline dropped) or --from-file (as is)')
    .argument('<name>', 'secret name: A-Z, 0-9 and _, starting with a letter')
    .option('--from-file <path>', 'read the value from this file instead of stdin')
    .option('--secret-key-file <file>', 'file holding the 32-byte secret key (base64 or hex; or env TYDRA_SECRET_KEY)')
    .action(async (name: string, flags: SetFlags) => {
      if (flags.fromFile === undefined && process.stdin.isTTY) {
        process.stderr.write(`tydra: reading the value of ${name} from stdin; end it with Enter and Ctrl-D\n`);
      }
      const value = await readValue(flags.fromFile);
      await withClient(flags, async (tydra) => {
        await tydra.setSecret(name, value);
        process.stdout.write(flags.json ? `${JSON.stringify({ set: name })}\n` : `set secret ${name}\n`);
      });
    });
  clientCommand(secret, 'ls', 'list secret names and when each was set (never values)').action((flags: Flags) =>
    withClient(flags, async (tydra) => {
      const secrets = await tydra.listSecrets();
      const text = flags.json ? JSON.stringify(secrets, null, 2) : secrets.map(describe).join('\n');
      process.stdout.write(text === '' ? '' : `${text}\n`);
    }),
  );
  clientCommand(secret, 'rm', 'remove secret NAME')
    .argument('<name>', 'secret name')
    .action((name: string, flags: Flags) =>
      withClient(flags, async (tydra) => {
        if (!(await tydra.removeSecret(name))) {
          process.stderr.write(`no secret named ${name}\n`);
          process.exitCode = 1;
          return;
        }
        process.stdout.write(flags.json ? `${JSON.stringify({ removed: name })}\n` : `removed secret ${name}\n`);
      }),
    );
}

/** The value: a file as is, or stdin without its one trailing newline (`echo value |`). */
async function readValue(file: string | undefined): Promise<string> {
  if (file !== undefined) {
    return decodeUtf8(await readFile(file), `the file ${file}`);
  }
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) {
    chunks.push(chunk as Buffer);
  }
  return decodeUtf8(Buffer.concat(chunks), 'stdin').replace(/\r?\n$/, '');
}

function describe(secret: SecretInfo): string {
  return `${secret.name}  set ${new Date(secret.setAt).toISOString()}`;
}
