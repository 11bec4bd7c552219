/**
 * `padlock certificates`: what is stored, and how healthy it is (certbot certificates).
 */
import type { CommandModule } from 'yargs';
import { describeCertificate, daysLeft } from '../tls/inspect.js';
import { systemClock } from '../clock.js';
import { silentLogger } from '../log.js';
import { withStoreOptions, openEngine, reportError, output } from './common.js';

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
      // The same decision as padlock renew and padlock run make: the stored ARI window first, the lifetime rule otherwise.
      const { engine, store, close } = await openEngine({ store: args, logger: silentLogger, timeoutMs: 30_000 });
      const now = systemClock.now();
      const names = args['cert-name'] ? [args['cert-name']] : await store.listLineages();
      const rows = [];
      for (const name of names) {
        const a = await engine.assess(name);
        if (!a) continue;
        const { lineage, failure } = a;
        const leaf = describeCertificate(lineage.bundle.cert);
        const decision = engine.decide(a);
        const status = a.revoked ? 'REVOKED' : leaf.notAfter <= now ? 'EXPIRED' : decision.due ? 'DUE' : 'VALID';
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
      await close();
      output(args, { ok: true, certificates: rows }, human);
    } catch (err) {
      reportError(err, args.json);
    }
  },
};
