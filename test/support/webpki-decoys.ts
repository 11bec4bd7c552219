/**
 * Decoy certificates for path-building tests and the benchmark: what a
 * hostile or careless server may put in a chain next to the real
 * intermediate.
 */
import { DAY, issue, makeKey, type TestCertificate } from './webpki-pki.js';

/** Hostile certificates around `inter`: look-alikes, spoofed key IDs, expired copies, strangers, loops. */
export function makeDecoys(root: TestCertificate, inter: TestCertificate, n: number): TestCertificate[] {
  const rel = (days: number): Date => new Date(Date.now() + days * DAY);
  const out: TestCertificate[] = [];
  for (let i = 0; out.length < n; i++) {
    switch (i % 6) {
      case 0: // same name, another key
        out.push(issue({ subject: inter.subject, profile: 'ca', issuer: root }));
        break;
      case 1: // same name and key ID, another key
        out.push(issue({ subject: inter.subject, profile: 'ca', issuer: root, ski: inter.keyId! }));
        break;
      case 2: // the right key, expired
        out.push(issue({ subject: inter.subject, profile: 'ca', issuer: root, key: inter.key, notBefore: rel(-900), notAfter: rel(-800) }));
        break;
      case 3: // a self-signed root with the intermediate's name
        out.push(issue({ subject: inter.subject, profile: 'ca' }));
        break;
      case 4: {
        // a pair that sign each other
        const k1 = makeKey();
        const k2 = makeKey();
        const a = issue({ subject: `CN=Loop A ${i}`, profile: 'ca', key: k1, issuer: { subject: `CN=Loop B ${i}`, der: new Uint8Array(), pem: '', key: k2, keyId: k2.keyId } });
        out.push(a, issue({ subject: `CN=Loop B ${i}`, profile: 'ca', key: k2, issuer: a }));
        break;
      }
      default: // a stranger
        out.push(issue({ subject: `CN=Stranger ${i}`, profile: 'ca' }));
    }
  }
  return out.slice(0, n);
}
