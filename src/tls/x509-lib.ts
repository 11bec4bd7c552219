/**
 * @peculiar/x509, loaded on first use, with node:crypto's WebCrypto as its
 * crypto provider.
 *
 * Loaded when padlock creates a certificate (the local CA, a TLS-ALPN-01
 * challenge certificate), not when it starts: with tsyringe and the CMS, PFX
 * and PKCS#9 schemas it is about 150 modules.
 *
 * It is a CommonJS module. Node's `import()` gives its exports both as named
 * exports and as the default; padlock's bundle (scripts/bundle.mjs, code
 * splitting) gives them as the default only, so the default is read first.
 */
import { webcrypto } from 'node:crypto';
import type * as X509 from '@peculiar/x509';

let loaded: Promise<typeof X509> | undefined;

export function x509Lib(): Promise<typeof X509> {
  loaded ??= import('@peculiar/x509').then((mod) => {
    const lib = ((mod as unknown as { default?: typeof X509 }).default ?? mod) as typeof X509;
    lib.cryptoProvider.set(webcrypto as never);
    return lib;
  });
  return loaded;
}
