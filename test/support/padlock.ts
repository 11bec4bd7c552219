import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { X509Certificate } from 'node:crypto';
import type { Pebble } from './pebble.js';

/** The flags that point `padlock issue` at a test Pebble, trusting only what the test made. */
export function pebbleFlags(pebble: Pebble, extra: { email?: string } = {}): string[] {
  return [
    '--server', pebble.directoryUrl,
    '--server-ca', pebble.serverCaFile,
    '--trusted-roots', pebble.rootsFile,
    '--agree-tos',
    '--email', extra.email ?? 'ops@example.com',
    '--http-01-port', String(pebble.httpPort),
    '--http-01-address', '127.0.0.1',
  ];
}

/** The flags that point `padlock run` at a test Pebble (its HTTP port is set by startPadlockRun's httpPort). */
export function pebbleRunFlags(pebble: Pebble): string[] {
  return ['--server', pebble.directoryUrl, '--server-ca', pebble.serverCaFile, '--trusted-roots', pebble.rootsFile, '--agree-tos', '--email', 'ops@example.com'];
}

/** A fresh config dir, removed by the returned cleanup. */
export async function tempConfigDir(prefix = 'padlock-cfg-'): Promise<{ dir: string; cleanup: () => Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  return { dir, cleanup: () => rm(dir, { recursive: true, force: true }) };
}

/** DNS names on a PEM certificate. */
export function sanNames(pem: string): string[] {
  const x = new X509Certificate(pem);
  return (x.subjectAltName ?? '').split(', ').filter((s) => s.startsWith('DNS:')).map((s) => s.slice(4)).sort();
}

let counter = 0;
/** A name nobody used before in this process (Pebble reuses nothing with PEBBLE_AUTHZREUSE=0 anyway). */
export function uniqueName(label: string): string {
  counter += 1;
  return `${label}-${process.pid}-${counter}.example.com`;
}
