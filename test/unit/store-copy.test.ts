/**
 * `copyStore` (padlock store copy) between two memory stores: what lands in
 * the destination, what is left alone, and what --replace and --dry-run do.
 * The CLI round trip through a folder and a real Redis is in
 * test/integration/store-copy.test.ts.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { MemoryStore } from '../../src/store/memory-store.js';
import { copyStore, type CopyItem } from '../../src/store/copy.js';
import type { AccountRecord, CertStore } from '../../src/store/store.js';
import { taggedBundle, taggedMeta, taggedState } from '../support/store-crash-child.js';

const CA = 'https://acme.test/directory';
const account = (tag: string): AccountRecord => ({ directoryUrl: CA, accountUrl: `${CA}/acct/${tag}`, keyPem: `key ${tag}`, createdAt: '2026-01-01T00:00:00.000Z' });

async function put(store: CertStore, name: string, tag: string): Promise<void> {
  const unlock = await store.lock(name);
  try {
    await store.putVersion(name, taggedBundle(tag), taggedMeta(name, tag), { lock: unlock });
  } finally {
    await unlock();
  }
}

/** A source with two lineages (one with two versions), a state and an account. */
async function source(): Promise<MemoryStore> {
  const s = new MemoryStore();
  await put(s, 'a.example', 'a1');
  await put(s, 'a.example', 'a2');
  await put(s, 'b.example', 'b1');
  await s.updateState('a.example', () => taggedState('ledger'));
  await s.writeAccount(account('one'));
  return s;
}

const actions = (items: CopyItem[]) => Object.fromEntries(items.map((i) => [`${i.kind} ${i.name}`, i.action]));

describe('copyStore', () => {
  it('copies each current version, every state and every account into an empty store', async () => {
    const from = await source();
    const to = new MemoryStore();
    const report = await copyStore(from, to);
    assert.equal(report.copied, 4);
    assert.deepEqual((await to.readLineage('a.example'))?.bundle, taggedBundle('a2'), 'the current version, not the first');
    assert.equal((await to.readLineage('a.example'))?.version, 1, 'earlier versions stay in the source');
    assert.deepEqual((await to.readLineage('b.example'))?.meta, taggedMeta('b.example', 'b1'));
    assert.deepEqual(await to.readState('a.example'), taggedState('ledger'));
    assert.deepEqual(await to.readAccount(CA), account('one'));
  });

  it('copies nothing the second time: every item is reported unchanged', async () => {
    const from = await source();
    const to = new MemoryStore();
    await copyStore(from, to);
    const again = await copyStore(from, to);
    assert.equal(again.copied, 0);
    assert.equal(again.unchanged, 4);
    assert.equal((await to.readLineage('a.example'))?.version, 1, 'no new version was written');
  });

  const cases: { desc: string; replace: boolean; expectLineage: string; expectAccount: string; expectState: string; action: CopyItem['action'] }[] = [
    { desc: 'keeps what the destination already has with other content, and says so', replace: false, expectLineage: 'mine', expectAccount: 'fleet', expectState: 'newer', action: 'kept-existing' },
    { desc: 'replaces it with --replace', replace: true, expectLineage: 'a2', expectAccount: 'one', expectState: 'ledger', action: 'copied' },
  ];
  for (const c of cases) {
    it(c.desc, async () => {
      const from = await source();
      const to = new MemoryStore();
      await put(to, 'a.example', 'mine');
      await to.writeAccount(account('fleet'));
      await to.updateState('a.example', () => taggedState('newer'));
      const report = await copyStore(from, to, { replace: c.replace });
      assert.equal(actions(report.items)['lineage a.example'], c.action);
      assert.equal(actions(report.items)[`account ${CA}`], c.action);
      assert.equal(actions(report.items)['state a.example'], c.action, 'a running fleet\'s ledger is not overwritten by a backup\'s');
      assert.deepEqual((await to.readLineage('a.example'))?.bundle, taggedBundle(c.expectLineage));
      assert.deepEqual(await to.readAccount(CA), account(c.expectAccount));
      assert.deepEqual(await to.readState('a.example'), taggedState(c.expectState));
      assert.equal(actions(report.items)['lineage b.example'], 'copied', 'what the destination lacks is copied either way');
    });
  }

  it('writes nothing on --dry-run and lists what it would copy', async () => {
    const from = await source();
    const to = new MemoryStore();
    const report = await copyStore(from, to, { dryRun: true });
    assert.equal(report.copied, 4);
    assert.ok(report.items.every((i) => i.action === 'would-copy'));
    assert.deepEqual(await to.listLineages(), []);
    assert.deepEqual(await to.listAccounts(), []);
    assert.deepEqual(await to.listStates(), []);
  });
});
