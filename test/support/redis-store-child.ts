/**
 * A child process for the Redis store's cross-process tests, run as
 * `node --import tsx test/support/redis-store-child.ts MODE NAME [ARG]`
 * with the store in the environment: PADLOCK_TEST_STORE (the URL),
 * PADLOCK_TEST_PREFIX, PADLOCK_STORE_KEY (hex), PADLOCK_TEST_CA (optional
 * CA file) and PADLOCK_TEST_LOCK_TTL_MS (optional).
 *
 *   hold-lock NAME        take lock(NAME), print "locked", keep it (heartbeat
 *                         running) until a line arrives on stdin, then
 *                         release it, print "released", close, exit 0
 *   put NAME TAG          put version TAG of NAME (taggedBundle/taggedMeta),
 *                         print the version number, close, exit 0
 *   update-state NAME PREFIX  30 concurrent updateState(NAME) calls, each adding the key
 *                         PREFIX-i and adding 1 to `count`; close, exit 0
 *   watch-close NAME      subscribe to watch(), never unsubscribe, close the
 *                         store, print "closed" (or how many timers still keep
 *                         the process alive) and return: the process must exit
 *
 * It imports nothing from node:test on purpose: it is not a test file.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { openStore } from '../../src/store/open-store.js';
import { parseStoreKey } from '../../src/store/store-key.js';
import { taggedBundle, taggedMeta } from './store-crash-child.js';

const childScript = fileURLToPath(import.meta.url);
const repoRoot = fileURLToPath(new URL('../..', import.meta.url));

/** What the child needs to open the same store as the test. */
export interface ChildStore {
  url: string;
  prefix: string;
  keyHex: string;
  caFile?: string | undefined;
  lockTtlMs?: number | undefined;
}

/** Spawns the child with `args`, its store in the environment; stdout and stdin are pipes. */
export function spawnRedisChild(store: ChildStore, args: string[]): ChildProcess {
  return spawn(process.execPath, ['--import', 'tsx', childScript, ...args], {
    cwd: repoRoot,
    stdio: ['pipe', 'pipe', 'pipe'],
    env: {
      ...process.env,
      PADLOCK_TEST_STORE: store.url,
      PADLOCK_TEST_PREFIX: store.prefix,
      PADLOCK_STORE_KEY: store.keyHex,
      ...(store.caFile ? { PADLOCK_TEST_CA: store.caFile } : {}),
      ...(store.lockTtlMs ? { PADLOCK_TEST_LOCK_TTL_MS: String(store.lockTtlMs) } : {}),
    },
  });
}

/** Runs the child to its end (killed after `timeoutMs`); resolves with its exit and output. */
export function runRedisChild(store: ChildStore, args: string[], timeoutMs = 30_000): Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawnRedisChild(store, args);
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (b: Buffer) => (stdout += b.toString('utf8')));
    child.stderr!.on('data', (b: Buffer) => (stderr += b.toString('utf8')));
    child.stdin!.end();
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

async function main(argv: string[]): Promise<void> {
  const [mode, name, arg] = argv;
  const env = process.env;
  if (!mode || !name || !env['PADLOCK_TEST_STORE']) throw new Error('usage: redis-store-child.ts MODE NAME [ARG] with PADLOCK_TEST_STORE set (see the header)');
  const store = await openStore({
    url: env['PADLOCK_TEST_STORE'],
    prefix: env['PADLOCK_TEST_PREFIX'],
    key: parseStoreKey(env['PADLOCK_STORE_KEY'] ?? '', 'PADLOCK_STORE_KEY'),
    caFile: env['PADLOCK_TEST_CA'],
    lockTtlMs: env['PADLOCK_TEST_LOCK_TTL_MS'] ? Number(env['PADLOCK_TEST_LOCK_TTL_MS']) : undefined,
  });
  if (mode === 'hold-lock') {
    const unlock = await store.lock(name);
    process.stdout.write('locked\n');
    const lines = createInterface({ input: process.stdin });
    await new Promise<void>((resolve) => {
      lines.once('line', () => resolve());
      lines.once('close', () => resolve());
    });
    await unlock();
    process.stdout.write('released\n');
  } else if (mode === 'put') {
    const tag = arg ?? 'child';
    process.stdout.write(`${await store.putVersion(name, taggedBundle(tag), taggedMeta(name, tag))}\n`);
  } else if (mode === 'update-state') {
    const prefix = arg ?? 'child';
    await Promise.all(Array.from({ length: 30 }, (_, i) =>
      store.updateState(name, (state) => ({ ...state, [`${prefix}-${i}`]: true, count: Number(state?.['count'] ?? 0) + 1 }))));
  } else if (mode === 'watch-close') {
    store.watch(() => undefined);
    await store.close();
    // A timer still pending after close() keeps a CLI process alive for its whole delay.
    const timers = process.getActiveResourcesInfo().filter((r) => r === 'Timeout');
    process.stdout.write(timers.length === 0 ? 'closed\n' : `closed, ${timers.length} timer(s) still keep the process alive\n`);
    return;
  } else {
    throw new Error(`unknown mode ${mode}`);
  }
  await store.close();
}

if (process.argv[1] === childScript) {
  main(process.argv.slice(2)).catch((err: unknown) => {
    process.stderr.write(`${err instanceof Error ? err.stack ?? err.message : String(err)}\n`);
    process.exit(1);
  });
}
