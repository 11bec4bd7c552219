/**
 * `padlock delete`: remove a lineage (all versions, metadata and state) from the store.
 */
import type { CommandModule } from 'yargs';
import { PadlockError } from '../errors.js';
import { withStoreOptions, openStore, reportError, output } from './common.js';

interface DeleteArgs {
  'config-dir': string;
  json: boolean;
  'cert-name': string;
}

export const deleteCommand: CommandModule<object, DeleteArgs> = {
  command: 'delete',
  describe: 'Delete a certificate lineage from the store (it is not revoked)',
  builder: (y) => withStoreOptions(y).option('cert-name', { type: 'string', demandOption: true, describe: 'The lineage to delete' }) as never,
  handler: async (args) => {
    try {
      const store = await openStore(args);
      try {
        const name = args['cert-name'];
        if (!(await store.readMeta(name)) && !(await store.readLineage(name))) {
          throw new PadlockError('STORE_NOT_FOUND', `no certificate named ${name} in ${store.location}; see padlock certificates`);
        }
        const unlock = await store.lock(name, { waitMs: 10_000 });
        try {
          await store.deleteLineage(name);
        } finally {
          await unlock();
        }
        output(args, { ok: true, action: 'deleted', name }, `Deleted ${name} from ${store.location}.`);
      } finally {
        await store.close();
      }
    } catch (err) {
      reportError(err, args.json);
    }
  },
};
