import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { newTicketKey, newTicketKeys, rotateTicketKeys, ticketKeyAnswer, ticketKeysFromWire, ticketKeysToWire, type TicketKeys } from '../../src/tls/session-tickets.js';

describe('ticketKeyAnswer: what OpenSSL is told for one ticket', () => {
  const current = newTicketKey();
  const previous = newTicketKey();
  const keys: TicketKeys = { current, previous };
  const table = [
    { desc: 'a ticket of the current key is accepted and renewed (TLS 1.3 clients get a fresh ticket)', name: current.name, want: [2, current.hmac, current.aes] },
    { desc: 'a ticket of the previous key is accepted with that key, and renewed with the current one', name: previous.name, want: [2, previous.hmac, previous.aes] },
    { desc: 'an unknown key name is refused (a full handshake follows), still with 16-byte keys, which Node reads regardless', name: Buffer.alloc(16, 9), want: [0, current.hmac, current.aes] },
  ];
  for (const c of table) it(c.desc, () => assert.deepEqual(ticketKeyAnswer(keys, c.name, false), c.want));

  it('encrypts with the current key and a fresh 16-byte IV each time', () => {
    const a = ticketKeyAnswer(keys, Buffer.alloc(16), true);
    const b = ticketKeyAnswer(keys, Buffer.alloc(16), true);
    assert.equal(a[0], 1);
    assert.deepEqual(a.slice(1, 4), [current.hmac, current.aes, current.name]);
    assert.equal((a[4] as Buffer).length, 16);
    assert.notDeepEqual(a[4], b[4]);
  });

  it('a key is 16 bytes of name, HMAC key and AES key, all different between keys', () => {
    const k = newTicketKey();
    for (const part of [k.name, k.hmac, k.aes]) assert.equal(part.length, 16);
    assert.notDeepEqual(k.name, newTicketKey().name);
  });
});

describe('ticket key rotation and transport', () => {
  it('rotation makes the current key the previous one and drops the older one', () => {
    const first = newTicketKeys();
    const second = rotateTicketKeys(first);
    const third = rotateTicketKeys(second);
    assert.equal(second.previous, first.current);
    assert.equal(third.previous, second.current);
    assert.notEqual(third.current, second.current);
  });

  it('round-trips through the worker IPC form', () => {
    const keys = rotateTicketKeys(newTicketKeys());
    const back = ticketKeysFromWire(ticketKeysToWire(keys));
    assert.deepEqual(back, { current: keys.current, previous: keys.previous });
    assert.deepEqual(ticketKeysFromWire(ticketKeysToWire(newTicketKeys())).previous, undefined);
  });

  it('refuses a key of the wrong length from the wire', () => {
    assert.throws(() => ticketKeysFromWire({ current: 'abcd' }), /48 bytes/);
  });
});
