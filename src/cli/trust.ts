/**
 * `padlock trust`: prints the local CA's root (for *.localhost and other
 * local names) and how to install it.
 */
import type { CommandModule } from 'yargs';
import { X509Certificate } from 'node:crypto';
import { join } from 'node:path';
import { ensureLocalRoot, LOCAL_ROOT_LINEAGE } from '../tls/local-ca.js';
import { systemClock } from '../clock.js';
import { withStoreOptions, openStore, reportError, output } from './common.js';

interface TrustArgs {
  'config-dir': string;
  json: boolean;
  pem: boolean;
}

export const trustCommand: CommandModule<object, TrustArgs> = {
  command: 'trust',
  describe: "Print the local CA root (for *.localhost and other local names) and how to trust it",
  builder: (y) => withStoreOptions(y).option('pem', { type: 'boolean', default: false, describe: 'Print only the PEM, for piping into a file' }) as never,
  handler: async (args) => {
    try {
      const store = await openStore(args['config-dir']);
      const root = await ensureLocalRoot(store, systemClock);
      if (args.pem) {
        process.stdout.write(root.certPem);
        return;
      }
      const x = new X509Certificate(root.certPem);
      const file = join(store.location, 'live', LOCAL_ROOT_LINEAGE, 'cert.pem');
      output(args, { ok: true, subject: x.subject, notAfter: new Date(x.validTo).toISOString(), fingerprint256: x.fingerprint256, path: file, pem: root.certPem }, [
        `padlock's local CA (for names such as *.localhost, *.internal, *.home.arpa)`,
        `  subject:     ${x.subject.replace(/\n/g, ', ')}`,
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
    } catch (err) {
      reportError(err, args.json);
    }
  },
};
