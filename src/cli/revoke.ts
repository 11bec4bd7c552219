/**
 * `padlock revoke`: revoke a lineage's current certificate (RFC 8555 section 7.6)
 * with the account that issued it.
 */
import type { CommandModule } from 'yargs';
import { cliEnvironment } from '../config/cli-env.js';
import { openAccount } from '../acme/account.js';
import { systemClock } from '../clock.js';
import { PadlockError } from '../errors.js';
import { withStoreOptions, openStore, makeLogger, reportError, readPemOption, output } from './common.js';

/** RFC 5280 section 5.3.1 reason codes, named as certbot names them. */
export const REVOCATION_REASONS = { unspecified: 0, keycompromise: 1, affiliationchanged: 3, superseded: 4, cessationofoperation: 5 } as const;

interface RevokeArgs {
  'config-dir': string;
  json: boolean;
  'cert-name': string;
  reason: keyof typeof REVOCATION_REASONS;
  'server-ca'?: string | undefined;
  'delete-after-revoke': boolean;
  timeout: number;
  verbose: boolean;
}

export const revokeCommand: CommandModule<object, RevokeArgs> = {
  command: 'revoke',
  describe: "Revoke a certificate's current version at the CA",
  builder: (y) =>
    withStoreOptions(y)
      .option('cert-name', { type: 'string', demandOption: true, describe: 'The lineage to revoke' })
      .option('reason', { type: 'string', choices: Object.keys(REVOCATION_REASONS), default: 'unspecified', describe: 'Revocation reason' })
      .option('delete-after-revoke', { type: 'boolean', default: false, describe: 'Also delete the lineage afterwards' })
      .option('server-ca', { type: 'string', describe: "PEM file trusted for the ACME server's HTTPS (default: the one stored with the lineage)" })
      .option('timeout', { type: 'number', default: 30, describe: 'Seconds to wait for any one request to the CA' })
      .option('verbose', { alias: 'v', type: 'boolean', default: false }) as never,
  handler: async (args) => {
    try {
      const store = await openStore(args);
      try {
        const name = args['cert-name'];
        const lineage = await store.readLineage(name);
        if (!lineage) throw new PadlockError('STORE_NOT_FOUND', `no certificate named ${name} in ${store.location}; see padlock certificates`);
        const serverCa = await readPemOption('--server-ca', args['server-ca'] ?? lineage.meta.serverCa ?? cliEnvironment().serverCa);
        const unlock = await store.lock(name, { waitMs: 10_000 });
        try {
          const client = await openAccount(store, {
            directoryUrl: lineage.meta.server,
            agreeTos: true,
            logger: makeLogger(args),
            clock: systemClock,
            timeoutMs: args.timeout * 1000,
            ...(serverCa ? { serverCa } : {}),
            ...(lineage.meta.email ? { email: lineage.meta.email } : {}),
          });
          try {
            await client.call(`revoking ${name}`, (c) => c.revokeCertificate(lineage.bundle.cert, { reason: REVOCATION_REASONS[args.reason] }));
          } finally {
            client.close();
          }
          const now = systemClock.now().toISOString();
          if (args['delete-after-revoke']) await store.deleteLineage(name);
          else await store.updateState(name, (state) => ({ ...state, revokedAt: now, revokedReason: args.reason }));
        } finally {
          await unlock();
        }
        output(args, { ok: true, action: 'revoked', name, reason: args.reason, deleted: args['delete-after-revoke'] },
          `Revoked ${name} (${args.reason}).${args['delete-after-revoke'] ? ' Deleted it.' : ' padlock renew will replace it; padlock delete --cert-name ' + name + ' removes it.'}`);
      } finally {
        await store.close();
      }
    } catch (err) {
      reportError(err, args.json);
    }
  },
};
