import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { MemoryStore } from '../../src/store/memory-store.js';
import { fakeBundle, fakeMeta, runStoreContract, sleep, waitUntil } from './store.contract.js';

runStoreContract('memory', async () => ({ store: new MemoryStore(), cleanup: async () => undefined }));

describe('MemoryStore watch', () => {
  it('calls listeners only after putVersion and deleteLineage resolved, and not for deleting a missing lineage', async () => {
    const store = new MemoryStore();
    const name = 'm.example.test';
    const events: string[] = [];
    const unsubscribe = store.watch((changed) => events.push(`call ${changed}`));
    try {
      await store.putVersion(name, fakeBundle('m1'), fakeMeta(name));
      events.push('put resolved');
      await waitUntil(() => events.length === 2, 'a call after putVersion');
      await store.deleteLineage(name);
      events.push('delete resolved');
      await waitUntil(() => events.length === 4, 'a call after deleteLineage');
      await store.deleteLineage('never.example.test');
      await sleep(150);
      assert.deepEqual(events, ['put resolved', `call ${name}`, 'delete resolved', `call ${name}`]);
    } finally {
      unsubscribe();
    }
  });
});
