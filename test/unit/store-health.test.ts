import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { StoreHealthWatch, STORE_EVENT_NAME } from '../../src/observe/store-health.js';
import { Notifier } from '../../src/notify/notifier.js';
import { silentLogger } from '../../src/log.js';
import { renderMessage } from '../../src/notify/messages.js';
import type { NotifyEvent } from '../../src/notify/events.js';

describe('watching a shared store', () => {
  it('alerts once when the store stays unreachable past the grace time, and once when it is back; never makes padlock unready', async () => {
    let t = Date.parse('2026-12-03T12:00:00Z');
    const clock = { now: () => new Date(t) };
    let health = { reachable: true, since: new Date(t) } as { reachable: boolean; since: Date; error?: string };
    const store = { location: 'redis://redis.internal:6379/0', health: () => health };
    const sent: NotifyEvent[] = [];
    const notifier = new Notifier({ channels: [{ name: 'capture', target: 'memory', send: async (d) => void sent.push(d.event) }], clock, logger: silentLogger });
    const watch = new StoreHealthWatch({ store, clock, logger: silentLogger, notifier, alertAfterMs: 300_000 });

    health = { reachable: false, since: new Date(t), error: 'connect ECONNREFUSED 10.0.0.5:6379' };
    watch.check();
    t += 240_000;
    watch.check();
    await notifier.flush();
    assert.equal(sent.length, 0, 'quiet within the grace time');
    assert.equal(watch.view().reachable, false);

    t += 120_000;
    watch.check();
    watch.check();
    await notifier.flush();
    assert.deepEqual(sent.map((e) => e.kind), ['store_unreachable'], 'once, not on every check');
    assert.equal(sent[0]!.name, STORE_EVENT_NAME);
    const m = renderMessage(sent[0]!, clock.now());
    assert.match(m.subject, /The certificate store redis:\/\/redis\.internal:6379\/0 is unreachable/);
    assert.match(m.text, /keeps serving from memory/);
    assert.equal(watch.view().alerted, true);

    health = { reachable: true, since: new Date(t) };
    watch.check();
    await notifier.flush();
    assert.deepEqual(sent.map((e) => e.kind), ['store_unreachable', 'store_reachable']);
    assert.match(renderMessage(sent[1]!, clock.now()).subject, /reachable again/);
  });
});
