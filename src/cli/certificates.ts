/**
 * `padlock certificates`: what is stored, and how healthy it is (certbot certificates).
 */
import type { CommandModule } from 'yargs';
import { describeCertificate, daysLeft } from '../tls/inspect.js';
import { decideRenewal } from '../certificates/policy.js';
import { failureOf } from '../certificates/obtain.js';
import { systemClock } from '../clock.js';
import { withStoreOptions, openStore, reportError, output } from './common.js';

interface ListArgs {
  'config-dir': string;
  json: boolean;
  'cert-name'?: string | undefined;
}

export const certificatesCommand: CommandModule<object, ListArgs> = {
  command: 'certificates',
  aliases: ['list'],
  describe: 'List stored certificates: names, expiry, days left, issuer, key type, paths',
  builder: (y) => withStoreOptions(y).option('cert-name', { type: 'string', describe: 'Show only this lineage' }) as never,
  handler: async (args) => {
    try {
      const store = await openStore(args['config-dir']);
      const now = systemClock.now();
      const names = args['cert-name'] ? [args['cert-name']] : await store.listLineages();
      const rows = [];
      for (const name of names) {
        const lineage = await store.readLineage(name);
        if (!lineage) continue;
        const leaf = describeCertificate(lineage.bundle.cert);
        const state = await store.readState(name);
        const failure = failureOf(state);
        const decision = decideRenewal(leaf, now);
        const status = state?.['revokedAt'] ? 'REVOKED' : leaf.notAfter <= now ? 'EXPIRED' : decision.due ? 'DUE' : 'VALID';
        rows.push({
          name,
          domains: leaf.names,
          notAfter: leaf.notAfter.toISOString(),
          daysLeft: daysLeft(leaf.notAfter, now),
          renewAfter: decision.dueAt.toISOString(),
          status,
          issuer: leaf.issuer,
          keyType: leaf.keyType,
          serial: leaf.serialNumber,
          server: lineage.meta.server,
          version: lineage.version,
          paths: lineage.paths,
          ...(failure ? { lastFailure: failure } : {}),
        });
      }
      const human = rows.length === 0
        ? `No certificates found in ${store.location}.`
        : rows.map((r) => [
            `Certificate Name: ${r.name}`,
            `  Domains:     ${r.domains.join(' ')}`,
            `  Expiry:      ${r.notAfter} (${r.status}: ${r.daysLeft} days left, renews after ${r.renewAfter})`,
            `  Issuer:      ${r.issuer}`,
            `  Key Type:    ${r.keyType}`,
            ...(r.paths ? [`  Certificate: ${r.paths.fullchain}`, `  Private Key: ${r.paths.privkey}`] : []),
            ...(r.lastFailure ? [`  Last error:  ${r.lastFailure.lastError?.message ?? ''} (next attempt ${r.lastFailure.nextAttemptAt ?? 'any time'})`] : []),
          ].join('\n')).join('\n\n');
      output(args, { ok: true, certificates: rows }, human);
    } catch (err) {
      reportError(err, args.json);
    }
  },
};
