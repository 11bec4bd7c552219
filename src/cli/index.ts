/**
 * padlock's command line. Each command lives in its own file and exports a
 * yargs CommandModule; this file only wires them together.
 *
 * A command's module (and what it imports: the ACME client, dockerode, the
 * Redis client...) is loaded only when that command runs: `padlock --version`
 * and `padlock --help` load none, and `padlock issue` does not load the
 * daemon. The others are listed from the table in commands.ts, whose entries
 * a unit test keeps equal to the modules' own.
 */
import { COMMANDS, named } from './commands.js';
import { VERSION } from '../version.js';

export async function main(argv: string[]): Promise<void> {
  // Answered before yargs loads (about 0.1 s of start-up): scripts and health checks ask for the version often.
  if (argv.length === 1 && argv[0] === '--version') {
    process.stdout.write(`${VERSION}\n`);
    return;
  }
  const { default: yargs } = await import('yargs');
  const load = named(argv);
  const modules = await Promise.all(COMMANDS.map((e) => (load.has(e) ? e.load() : undefined)));
  let cli = yargs(argv).scriptName('padlock').usage('$0 <command> [options]');
  COMMANDS.forEach((e, i) => {
    cli = cli.command(modules[i] ?? {
      command: e.command,
      ...(e.aliases ? { aliases: e.aliases } : {}),
      describe: e.describe,
      handler: () => {
        throw new Error(`internal: the ${e.command} command was not loaded`);
      },
    });
  });
  skipHelpRendering(cli);
  await cli
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

/**
 * yargs renders a command's whole help text before it runs the command's
 * handler (`cacheHelpMessage`), to print it should the command fail later.
 * padlock's `.fail()` never prints help, and the rendering (string widths of
 * every line) cost about 70 ms of every command's start-up (bench/issue CPU
 * profile). `--help` still renders it, when asked. yargs is pinned in
 * package.json; if a later version hides this method, commands only start
 * slower.
 */
function skipHelpRendering(cli: object): void {
  type Internals = { getInternalMethods?: () => { getUsageInstance?: () => { cacheHelpMessage?: () => void } | undefined } };
  const usage = (cli as Internals).getInternalMethods?.().getUsageInstance?.();
  if (usage && typeof usage.cacheHelpMessage === 'function') usage.cacheHelpMessage = () => {};
}

main(process.argv.slice(2)).catch((err: unknown) => {
  const e = err as { code?: string; message?: string };
  process.stderr.write(`padlock: ${e.message ?? String(err)}${e.code ? ` [${e.code}]` : ''}\n`);
  process.exitCode = process.exitCode && process.exitCode !== 0 ? process.exitCode : 1;
});
