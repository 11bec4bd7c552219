import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createLogger } from '../../src/log.js';

describe('structured log', () => {
  it('writes JSON lines with the component fields and never a key, token or password', () => {
    const lines: string[] = [];
    const log = createLogger({ write: (l) => lines.push(l), now: () => new Date('2026-01-01T00:00:00Z') }).child({ component: 'acme' });
    log.info('registered', {
      accountUrl: 'https://ca/acct/1',
      keyPem: '-----BEGIN PRIVATE KEY-----secret',
      nested: { hmacKey: 'c2VjcmV0', smtpPassword: 'hunter2', token: 'abc' },
      keyType: 'ecdsa',
    });
    assert.equal(lines.length, 1);
    const rec = JSON.parse(lines[0]!);
    assert.equal(rec.component, 'acme');
    assert.equal(rec.msg, 'registered');
    assert.equal(rec.keyType, 'ecdsa');
    assert.equal(rec.accountUrl, 'https://ca/acct/1');
    assert.doesNotMatch(lines[0]!, /BEGIN PRIVATE KEY|c2VjcmV0|hunter2|"abc"/);
  });

  it('redacts inside arrays and deep objects, and cuts what is nested too deep to check', () => {
    const lines: string[] = [];
    const log = createLogger({ write: (l) => lines.push(l) });
    let deep: Record<string, unknown> = { password: 'p4ss-deep' };
    for (let i = 0; i < 10; i++) deep = { level: deep };
    log.warn('x', { channels: [{ webhookUrl: 'https://hooks.example/T0K3N' }], deep, smtpPasswordFile: '/run/secret' });
    assert.doesNotMatch(lines[0]!, /T0K3N|p4ss-deep|\/run\/secret/);
    assert.match(lines[0]!, /\[truncated\]/);
  });

  it('drops lines below the level', () => {
    const lines: string[] = [];
    createLogger({ write: (l) => lines.push(l), level: 'warn' }).info('quiet');
    assert.equal(lines.length, 0);
  });
});
