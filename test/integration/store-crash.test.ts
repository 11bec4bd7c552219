/**
 * Fault injection for the filesystem store: a real child process is
 * SIGKILLed at every named fault point of putVersion (and of the whole-item
 * writes), and the parent then reads what is on disk. This is the evidence
 * for the "complete old or complete new, never a mix" promise of store.ts.
 */
import { describe, it, beforeEach, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ATOMIC_FAULT_POINTS } from '../../src/store/atomic.js';
import { FS_STORE_FAULT_POINTS, openFsStore, type FsStoreFaultPoint } from '../../src/store/fs-store.js';
import type { CertBundle, Lineage } from '../../src/store/store.js';
import {
  crashDirectoryUrl,
  runChild,
  taggedAccount,
  taggedBundle,
  taggedMeta,
  taggedState,
  type ChildResult,
} from '../support/store-crash-child.js';

const NAME = 'crash.example.test';

/**
 * Which version a reader must see after a crash at each point: everything up
 * to the rename of the symlink leaves the old one current, everything from
 * it on the new one. A point missing here fails the table check below.
 */
const EXPECTED: Record<FsStoreFaultPoint, 'old' | 'new'> = {
  'putVersion:after-stage-partial': 'old',
  'putVersion:after-stage': 'old',
  'putVersion:after-archive': 'old',
  'putVersion:before-switch': 'old',
  'putVersion:after-switch': 'new',
  'atomic:after-temp-write': 'new', // renewal/NAME.json is written after the switch
  'atomic:after-rename': 'new',
  'putVersion:after-meta': 'new',
};

/** The tag each PEM part carries; a whole version has one tag in all four. */
function tagsOf(bundle: CertBundle): { cert: string; chain: string; privkey: string } {
  const tag = (re: RegExp, text: string, part: string): string => {
    const m = re.exec(text);
    assert.ok(m?.[1], `${part} does not look like a test PEM: ${JSON.stringify(text)}`);
    return m[1];
  };
  return {
    cert: tag(/^leaf (\S+)$/m, bundle.cert, 'cert'),
    chain: tag(/^intermediate for (\S+)$/m, bundle.chain, 'chain'),
    privkey: tag(/^key (\S+)$/m, bundle.privkey, 'privkey'),
  };
}

/** Asserts `lineage` is exactly the version tagged `tag`: PEMs paired, fullchain = cert + chain, meta of the same version. */
function assertWholeVersion(lineage: Lineage, tag: string): void {
  const tags = tagsOf(lineage.bundle);
  assert.deepEqual(tags, { cert: tag, chain: tag, privkey: tag }, `a mix of versions: ${JSON.stringify(tags)}`);
  assert.equal(lineage.bundle.fullchain, lineage.bundle.cert + lineage.bundle.chain, 'fullchain must be cert + chain of the same version');
  assert.deepEqual(lineage.bundle, taggedBundle(tag));
  assert.deepEqual(lineage.meta.domains, taggedMeta(NAME, tag).domains, 'meta must describe the current version');
}

function assertKilled(res: ChildResult, point: string): void {
  assert.equal(res.signal, 'SIGKILL', `the child should have died by SIGKILL at ${point}; exit ${res.code}, stderr: ${res.stderr}`);
}

describe('fs store survives a SIGKILL at every fault point', () => {
  let root: string;
  let dir: string;
  beforeEach(async () => {
    root = await mkdtemp(join(tmpdir(), 'padlock-store-crash-'));
    dir = join(root, 'config');
  });
  afterEach(async () => {
    await rm(root, { recursive: true, force: true });
  });

  it('has an expectation for every exported fault point', () => {
    assert.deepEqual(Object.keys(EXPECTED).sort(), [...FS_STORE_FAULT_POINTS].sort());
    for (const p of ATOMIC_FAULT_POINTS) assert.ok(p in EXPECTED, `${p} has no expectation`);
  });

  for (const point of FS_STORE_FAULT_POINTS) {
    const expected = EXPECTED[point];
    it(`putVersion over version 1 killed at ${point} leaves the ${expected} version whole, and the next putVersion succeeds`, async () => {
      const before = await openFsStore(dir);
      assert.equal(await before.putVersion(NAME, taggedBundle('old'), taggedMeta(NAME, 'old')), 1);

      assertKilled(await runChild(['crash', dir, NAME, point]), point);

      const store = await openFsStore(dir); // a fresh instance, as after a restart
      const lineage = await store.readLineage(NAME);
      assert.ok(lineage, 'the lineage must still exist');
      assertWholeVersion(lineage, expected);
      assert.equal(lineage.version, expected === 'old' ? 1 : 2);
      assert.deepEqual(await store.readMeta(NAME), lineage.meta, 'readMeta and readLineage must agree');
      assert.deepEqual(await store.listLineages(), [NAME]);
      // Programs that read by path (nginx, HAProxy) see the same whole version.
      assert.equal(await readFile(join(dir, 'live', NAME, 'fullchain.pem'), 'utf8'), taggedBundle(expected).fullchain);
      assert.equal(await readFile(join(dir, 'live', NAME, 'privkey.pem'), 'utf8'), taggedBundle(expected).privkey);

      const next = await store.putVersion(NAME, taggedBundle('after'), taggedMeta(NAME, 'after'));
      assert.ok(next > lineage.version, `the next version (${next}) must be above the current one (${lineage.version})`);
      const after = await store.readLineage(NAME);
      assert.ok(after);
      assert.equal(after.version, next);
      assertWholeVersion(after, 'after');
      assert.equal(await readFile(join(dir, 'live', NAME, 'fullchain.pem'), 'utf8'), taggedBundle('after').fullchain);
      // The crash debris is gone or harmless: only vN folders and no temp links remain.
      for (const e of await readdir(join(dir, 'archive', NAME))) assert.match(e, /^v\d+$/);
      assert.deepEqual((await readdir(join(dir, 'live'))).sort(), ['README', NAME]);
    });

    it(`the first putVersion killed at ${point} leaves no lineage or the whole new one`, async () => {
      await openFsStore(dir);
      assertKilled(await runChild(['crash', dir, NAME, point]), point);

      const store = await openFsStore(dir);
      const lineage = await store.readLineage(NAME);
      if (expected === 'old') {
        assert.equal(lineage, null, 'no version was made current');
        assert.deepEqual(await store.listLineages(), []);
      } else {
        assert.ok(lineage);
        assertWholeVersion(lineage, 'new');
        assert.equal(lineage.version, 1);
      }
      const next = await store.putVersion(NAME, taggedBundle('after'), taggedMeta(NAME, 'after'));
      const after = await store.readLineage(NAME);
      assert.equal(after?.version, next);
      assertWholeVersion(after!, 'after');
    });
  }

  for (const kind of ['meta', 'state', 'account'] as const) {
    for (const point of ATOMIC_FAULT_POINTS) {
      const expected = point === 'atomic:after-temp-write' ? 'old' : 'new';
      it(`write${kind[0]!.toUpperCase()}${kind.slice(1)} killed at ${point} leaves the ${expected} ${kind} whole`, async () => {
        const before = await openFsStore(dir);
        await before.putVersion(NAME, taggedBundle('v1'), taggedMeta(NAME, 'v1'));
        await before.writeMeta(NAME, taggedMeta(NAME, 'old'));
        await before.writeState(NAME, taggedState('old'));
        await before.writeAccount(taggedAccount('old'));

        assertKilled(await runChild(['crash-write', dir, kind, point]), point);

        const store = await openFsStore(dir);
        if (kind === 'meta') {
          assert.deepEqual(await store.readMeta(NAME), taggedMeta(NAME, expected));
          assert.deepEqual((await store.readLineage(NAME))?.meta, taggedMeta(NAME, expected));
        }
        if (kind === 'state') assert.deepEqual(await store.readState(NAME), taggedState(expected));
        if (kind === 'account') assert.deepEqual(await store.readAccount(crashDirectoryUrl), taggedAccount(expected));
      });
    }
  }
});
