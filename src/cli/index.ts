/**
 * padlock's command line. Each command lives in its own file and exports a
 * yargs CommandModule; this file only wires them together.
 */
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { issueCommand } from './issue.js';
import { runCommand } from './run.js';
import { trustCommand } from './trust.js';
import { notifyCommand } from './notify.js';
import { importCommand } from './import.js';
import { statusCommand } from './status.js';
import { certificatesCommand } from './certificates.js';
import { renewCommand } from './renew.js';
import { revokeCommand } from './revoke.js';
import { deleteCommand } from './delete.js';
import { verifyCommand } from './verify.js';
import { checkCommand } from './check.js';
import { storeCommand } from './store.js';

const VERSION = '0.1.0';

export async function main(argv: string[]): Promise<void> {
  await yargs(argv)
    .scriptName('padlock')
    .usage('$0 <command> [options]')
    .command(runCommand)
    .command(issueCommand)
    .command(certificatesCommand)
    .command(renewCommand)
    .command(revokeCommand)
    .command(deleteCommand)
    .command(verifyCommand)
    .command(checkCommand)
    .command(trustCommand)
    .command(notifyCommand)
    .command(importCommand)
    .command(statusCommand)
    .command(storeCommand)
    .demandCommand(1, 'Name a command; see padlock --help.')
    .strict()
    .version(VERSION)
    .help()
    .wrap(Math.min(110, process.stdout.columns ?? 100))
    .fail((msg, err) => {
      // yargs reports its own validation failures as YError; anything else is a real error.
      if (err && err.name !== 'YError') throw err;
      msg = msg ?? err?.message ?? 'invalid usage';
      process.stderr.write(`padlock: ${msg}\nRun "padlock --help" for usage.\n`);
      process.exit(64);
    })
    .parseAsync();
}

main(hideBin(process.argv)).catch((err: unknown) => {
  const e = err as { code?: string; message?: string };
  process.stderr.write(`padlock: ${e.message ?? String(err)}${e.code ? ` [${e.code}]` : ''}\n`);
  process.exitCode = process.exitCode && process.exitCode !== 0 ? process.exitCode : 1;
});
