/**
 * A child process for the filesystem store's crash and cross-process tests.
 * Run as `node --import tsx test/support/store-crash-child.ts MODE ...`:
 *
 *   crash DIR NAME POINT  open the store on DIR and put version "new" of NAME,
 *                         SIGKILLing itself when the store reaches fault POINT
 *                         (exits 3 if POINT was never reached)
 *   crash-write DIR KIND POINT  the same for writeMeta/writeState/writeAccount
 *                         (KIND = meta | state | account) of tag "new"
 *   hold-lock DIR NAME    take lock(NAME), print "locked", release it when a
 *                         line arrives on stdin (or stdin closes), print
 *                         "released", exit 0
 *   update-state DIR NAME PREFIX  30 updateState(NAME) calls, each adding
 *                         the key PREFIX-i and adding 1 to `count`; exit 0
 *   put DIR NAME TAG      put version TAG of NAME (taggedBundle/taggedMeta),
 *                         print the version number, exit 0
 *   watch DIR NAME        subscribe to watch() and never unsubscribe, put a
 *                         version of NAME (so a report is pending), print
 *                         "watching", and return: the process must still exit
 *
 * It imports nothing from node:test on purpose: it is not a test file.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { openFsStore } from '../../src/store/fs-store.js';
import type { AccountRecord, CertBundle, LineageMeta, LineageState } from '../../src/store/store.js';

export const childScript = fileURLToPath(import.meta.url);
const repoRoot = fileURLToPath(new URL('../..', import.meta.url));

/** Four PEM-ish parts tied to `tag`, so a reader can tell a mix of versions from a whole one. */
export function taggedBundle(tag: string): CertBundle {
  const cert = `-----BEGIN CERTIFICATE-----\nleaf ${tag}\n-----END CERTIFICATE-----\n`;
  const chain = `-----BEGIN CERTIFICATE-----\nintermediate for ${tag}\n-----END CERTIFICATE-----\n`;
  return { cert, chain, fullchain: cert + chain, privkey: `-----BEGIN PRIVATE KEY-----\nkey ${tag}\n-----END PRIVATE KEY-----\n` };
}

/** Meta whose domains depend on the tag, so meta that belongs to another version is visible too. */
export function taggedMeta(name: string, tag: string): LineageMeta {
  return {
    name,
    domains: [name, `${tag}.${name}`],
    server: 'https://acme.test/directory',
    keyType: 'ecdsa',
    challenge: { type: 'standalone', port: 80 },
    updatedAt: '2026-01-01T00:00:00.000Z',
  };
}

export function taggedState(tag: string): LineageState {
  return { tag, failures: tag.length, nested: { tag } };
}

export const crashDirectoryUrl = 'https://acme.test/directory';

export function taggedAccount(tag: string): AccountRecord {
  return { directoryUrl: crashDirectoryUrl, accountUrl: `https://acme.test/acct/${tag}`, keyPem: `key ${tag}`, createdAt: '2026-01-01T00:00:00.000Z' };
}

async function main(argv: string[]): Promise<void> {
  const [mode, dir, name, point] = argv;
  if (!dir || !name) throw new Error('usage: store-crash-child.ts MODE DIR NAME ... (see the header)');
  if (mode === 'crash') {
    if (!point) throw new Error('crash needs a fault point');
    const store = await openFsStore(dir, {
      faults: (at) => {
        if (at === point) process.kill(process.pid, 'SIGKILL');
      },
    });
    await store.putVersion(name, taggedBundle('new'), taggedMeta(name, 'new'));
    process.stderr.write(`fault point ${point} was never reached\n`);
    process.exit(3);
  }
  if (mode === 'crash-write') {
    // NAME is the kind of whole-item write: meta, state or account.
    if (!point) throw new Error('crash-write needs a fault point');
    const store = await openFsStore(dir, {
      faults: (at) => {
        if (at === point) process.kill(process.pid, 'SIGKILL');
      },
    });
    if (name === 'meta') await store.writeMeta('crash.example.test', taggedMeta('crash.example.test', 'new'));
    else if (name === 'state') await store.writeState('crash.example.test', taggedState('new'));
    else if (name === 'account') await store.writeAccount(taggedAccount('new'));
    else throw new Error(`unknown write kind ${name}`);
    process.stderr.write(`fault point ${point} was never reached\n`);
    process.exit(3);
  }
  if (mode === 'update-state') {
    if (!point) throw new Error('update-state needs a key prefix');
    const store = await openFsStore(dir);
    await Promise.all(Array.from({ length: 30 }, (_, i) =>
      store.updateState(name, (state) => ({ ...state, [`${point}-${i}`]: true, count: Number(state?.['count'] ?? 0) + 1 }))));
    return;
  }
  if (mode === 'put') {
    if (!point) throw new Error('put needs a tag');
    const store = await openFsStore(dir);
    process.stdout.write(`${await store.putVersion(name, taggedBundle(point), taggedMeta(name, point))}\n`);
    return;
  }
  if (mode === 'watch') {
    const store = await openFsStore(dir);
    store.watch(() => undefined);
    await store.putVersion(name, taggedBundle('watched'), taggedMeta(name, 'watched'));
    process.stdout.write('watching\n');
    return;
  }
  if (mode === 'hold-lock') {
    const store = await openFsStore(dir);
    const unlock = await store.lock(name);
    process.stdout.write('locked\n');
    const rl = createInterface({ input: process.stdin });
    await new Promise<void>((resolve) => {
      rl.once('line', () => resolve());
      rl.once('close', () => resolve());
    });
    rl.close();
    await unlock();
    process.stdout.write('released\n');
    return;
  }
  throw new Error(`unknown mode ${String(mode)}`);
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  main(process.argv.slice(2)).catch((err: unknown) => {
    process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(2);
  });
}

export interface ChildResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Starts this script in a fresh Node (the same binary as the test) with tsx, outside the test runner's context. */
export function spawnChild(args: string[]): ChildProcess {
  const env = { ...process.env };
  delete env.NODE_TEST_CONTEXT; // the child is a plain program, not a test file reporting to our runner
  return spawn(process.execPath, ['--import', 'tsx', childScript, ...args], {
    cwd: repoRoot,
    env,
    stdio: ['pipe', 'pipe', 'pipe'],
  });
}

/** Runs the child to its end (or kills it after `timeoutMs`) and collects what it printed. */
export function runChild(args: string[], timeoutMs = 60_000): Promise<ChildResult> {
  return new Promise((resolve, reject) => {
    const child = spawnChild(args);
    child.stdin?.end();
    let stdout = '';
    let stderr = '';
    child.stdout?.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr?.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}
