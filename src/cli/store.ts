/**
 * `padlock store copy`: moves an existing store without new orders, from a
 * folder to a shared Redis store and back; a backup is a copy to a folder.
 * The copying itself is src/store/copy.ts.
 */
import type { Argv, CommandModule } from 'yargs';
import { copyStore, type CopyReport } from '../store/copy.js';
import { isRedisUrl } from '../store/redis-url.js';
import type { CertStore } from '../store/store.js';
import { openStore, output, reportError, withStoreOptions, type StoreArgs } from './common.js';

interface CopyArgs extends StoreArgs {
  from?: string | undefined;
  to: string;
  replace: boolean;
  'dry-run': boolean;
  json: boolean;
}

/** Opens the store a --from/--to value names: a Redis URL (with --store-prefix, --store-ca, --store-key-file), or a folder. */
function openSide(value: string, args: CopyArgs): Promise<CertStore> {
  if (!isRedisUrl(value)) return openStore({ 'config-dir': value }, { folderOnly: true });
  return openStore({
    'config-dir': args['config-dir'],
    store: value,
    ...(args['store-prefix'] ? { 'store-prefix': args['store-prefix'] } : {}),
    ...(args['store-ca'] ? { 'store-ca': args['store-ca'] } : {}),
    ...(args['store-key-file'] ? { 'store-key-file': args['store-key-file'] } : {}),
  });
}

const copyCommand: CommandModule<object, CopyArgs> = {
  command: 'copy',
  describe: 'Copy every certificate, state and ACME account from one store to another (folder or Redis), ordering nothing',
  builder: (y) =>
    withStoreOptions(y)
      .option('from', { type: 'string', describe: 'The store to copy from: a folder or a Redis URL (default: --store, else --config-dir)' })
      .option('to', { type: 'string', demandOption: 'name the store to copy to with --to (a folder or a Redis URL)', describe: 'The store to copy to: a folder or a Redis URL' })
      .option('replace', { type: 'boolean', default: false, describe: 'Replace certificates and accounts the destination already holds with different content' })
      .option('dry-run', { type: 'boolean', default: false, describe: 'Say what would be copied; write nothing' })
      .example('$0 store copy --from /etc/padlock --to redis://:PASSWORD@redis.internal:6379/0 --store-key-file /etc/padlock/store.key', 'move a single host into a shared Redis store')
      .example('$0 store copy --store redis://... --store-key-file KEY --to /var/backups/padlock', 'back up a Redis store into a folder') as never,
  handler: async (args) => {
    let from: CertStore | undefined;
    let to: CertStore | undefined;
    try {
      from = await (args.from !== undefined ? openSide(args.from, args) : openStore(args));
      to = await openSide(args.to, args);
      const report = await copyStore(from, to, { replace: args.replace, dryRun: args['dry-run'] });
      output(args, { ok: true, ...report }, describe(report, args['dry-run']));
    } catch (err) {
      reportError(err, args.json);
    } finally {
      await from?.close();
      await to?.close();
    }
  },
};

function describe(r: CopyReport, dryRun: boolean): string {
  const lines = r.items.filter((i) => i.action !== 'unchanged').map((i) => `  ${i.kind.padEnd(8)} ${i.name}: ${i.action === 'kept-existing' ? 'the destination already has a different one; kept it (--replace replaces it)' : i.action}`);
  return [
    `${dryRun ? 'Would copy' : 'Copied'} ${r.copied} item${r.copied === 1 ? '' : 's'} from ${r.from} to ${r.to}; ${r.unchanged} already the same${r.keptExisting ? `, ${r.keptExisting} kept as the destination had them` : ''}.`,
    ...lines,
  ].join('\n');
}

export const storeCommand: CommandModule<object, object> = {
  command: 'store <command>',
  describe: 'Manage the certificate store (copy between a folder and Redis)',
  builder: (y: Argv<object>) => y.command(copyCommand).demandCommand(1, 'Name a store command: copy') as never,
  handler: () => {},
};
