/**
 * `padlock trust`: prints the local CA's root (for *.localhost and other
 * local names), which names it can sign, and how to install it.
 *
 * The root must permit the same suffixes the daemon uses, or the two would
 * replace each other's roots, so the suffixes come from the same place as
 * `padlock run`'s: --local-suffixes, PADLOCK_LOCAL_SUFFIXES, the config file.
 */
import type { CommandModule } from 'yargs';
import { X509Certificate } from 'node:crypto';
import { join } from 'node:path';
import { describeNames, ensureLocalRoot, LOCAL_ROOT_LINEAGE } from '../tls/local-ca.js';
import { systemClock } from '../clock.js';
import { withStoreOptions, openStore, reportError, output } from './common.js';
import { loadRunConfig } from './run.js';

interface TrustArgs {
  'config-dir': string;
  json: boolean;
  pem: boolean;
  config?: string | undefined;
  'local-suffixes'?: string | undefined;
}

export const trustCommand: CommandModule<object, TrustArgs> = {
  command: 'trust',
  describe: "Print the local CA root (for *.localhost and other local names), the names it can sign, and how to trust it",
  builder: (y) =>
    withStoreOptions(y)
      .option('pem', { type: 'boolean', default: false, describe: 'Print only the PEM, for piping into a file' })
      .option('config', { type: 'string', describe: "padlock run's config file, for its localSuffixes (also $PADLOCK_CONFIG)" })
      .option('local-suffixes', { type: 'string', describe: 'Name suffixes the root may sign besides localhost, comma-separated (as padlock run; also $PADLOCK_LOCAL_SUFFIXES)' }) as never,
  handler: async (args) => {
    try {
      const { config } = await loadRunConfig({ config: args.config, 'local-suffixes': args['local-suffixes'] }, process.env);
      const store = await openStore(args);
      try {
        const root = await ensureLocalRoot(store, systemClock, config.localSuffixes);
        if (root.notice) process.stderr.write(`padlock: ${root.notice}\n`);
        if (args.pem) {
          process.stdout.write(root.certPem);
          return;
        }
        const x = new X509Certificate(root.certPem);
        const file = join(store.location, 'live', LOCAL_ROOT_LINEAGE, 'cert.pem');
        const json = { ok: true, subject: x.subject, notAfter: new Date(x.validTo).toISOString(), fingerprint256: x.fingerprint256, permittedNames: root.permittedNames, replaced: root.replaced, path: file, pem: root.certPem };
        output(args, json, [
          `padlock's local CA (for names such as *.localhost, *.internal, *.home.arpa)`,
          `  subject:     ${x.subject.replace(/\n/g, ', ')}`,
          `  can sign:    ${describeNames(root.permittedNames)}`,
          `  valid until: ${new Date(x.validTo).toISOString()}`,
          `  SHA-256:     ${x.fingerprint256}`,
          `  file:        ${file}`,
          ``,
          `Trust it on this machine:`,
          `  Debian/Ubuntu: sudo cp ${file} /usr/local/share/ca-certificates/padlock-local-ca.crt && sudo update-ca-certificates`,
          `  Fedora/RHEL:   sudo cp ${file} /etc/pki/ca-trust/source/anchors/padlock-local-ca.pem && sudo update-ca-trust`,
          `  macOS:         sudo security add-trusted-cert -d -r trustRoot -k /Library/Keychains/System.keychain ${file}`,
          `  Chrome/Firefox on Linux (NSS): certutil -d sql:$HOME/.pki/nssdb -A -t C,, -n padlock-local-ca -i ${file}`,
          `  curl:          curl --cacert ${file} https://app.localhost/`,
          ``,
          root.certPem.trimEnd(),
        ].join('\n'));
      } finally {
        await store.close();
      }
    } catch (err) {
      reportError(err, args.json);
    }
  },
};
