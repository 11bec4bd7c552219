import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { daemonChallenge, daemonSolvers, type ChallengeMode } from '../../src/acme/challenge-choice.js';
import { fallbackAfter } from '../../src/acme/challenge-fallback.js';
import type { ChallengeSolver, ChallengeType } from '../../src/acme/solver.js';
import type { LineageMeta } from '../../src/store/store.js';
import { PadlockError } from '../../src/errors.js';
import { Problems, preferredChallenge } from '../../src/cli/common.js';
import { envLayer, parseRunConfig } from '../../src/config/schema.js';

const solver = (type: ChallengeType): ChallengeSolver => ({
  type, describe: () => type, prepare: async () => {}, present: async () => {}, cleanup: async () => {}, close: async () => {}, hint: () => '',
});
const http01 = solver('http-01');
const tlsAlpn01 = solver('tls-alpn-01');
const STANDALONE: LineageMeta['challenge'] = { type: 'standalone', port: 80 };
const WEBROOT: LineageMeta['challenge'] = { type: 'webroot', webroot: '/srv' };
const TLS: LineageMeta['challenge'] = { type: 'tls-alpn-01', port: 443 };

describe('the challenge setting of padlock run', () => {
  const table: Array<{ desc: string; layers: Parameters<typeof parseRunConfig>[0]; want: ChallengeMode }> = [
    { desc: 'default: auto', layers: {}, want: 'auto' },
    { desc: 'the flag', layers: { flags: { challenge: 'tls-alpn-01' } }, want: 'tls-alpn-01' },
    { desc: 'PADLOCK_CHALLENGE', layers: { env: envLayer({ PADLOCK_CHALLENGE: 'http-01' }) }, want: 'http-01' },
    { desc: 'the config file key', layers: { file: { challenge: 'tls-alpn-01' } }, want: 'tls-alpn-01' },
    { desc: 'the flag beats the file', layers: { file: { challenge: 'tls-alpn-01' }, flags: { challenge: 'http-01' } }, want: 'http-01' },
  ];
  for (const c of table) it(c.desc, () => assert.equal(parseRunConfig(c.layers).challenge, c.want));
  it('refuses another value, naming the flag and what it accepts', () => {
    assert.throws(() => parseRunConfig({ flags: { challenge: 'dns-01' } }), /--challenge: challenge must be http-01, tls-alpn-01 or auto/);
  });
});

describe('daemonChallenge: what a new lineage records', () => {
  const table: Array<{ desc: string; mode: ChallengeMode; want: LineageMeta['challenge'] }> = [
    { desc: 'auto records HTTP-01 (it is tried first every time)', mode: 'auto', want: STANDALONE },
    { desc: 'http-01 records HTTP-01', mode: 'http-01', want: STANDALONE },
    { desc: 'tls-alpn-01 records TLS-ALPN-01 on the HTTPS port', mode: 'tls-alpn-01', want: { type: 'tls-alpn-01', port: 8443 } },
  ];
  for (const c of table) it(c.desc, () => assert.deepEqual(daemonChallenge(c.mode, STANDALONE, 8443), c.want));
});

describe('daemonSolvers: the solvers an issuance gets, in preference order', () => {
  const table: Array<{ desc: string; mode: ChallengeMode; challenge: LineageMeta['challenge']; tls: boolean; want: ChallengeType[] }> = [
    { desc: 'auto: HTTP-01, then TLS-ALPN-01', mode: 'auto', challenge: STANDALONE, tls: true, want: ['http-01', 'tls-alpn-01'] },
    { desc: 'auto without a TLS-ALPN-01 solver (companion mode): HTTP-01 only', mode: 'auto', challenge: WEBROOT, tls: false, want: ['http-01'] },
    { desc: 'http-01: never TLS-ALPN-01', mode: 'http-01', challenge: STANDALONE, tls: true, want: ['http-01'] },
    { desc: 'tls-alpn-01: TLS-ALPN-01 only', mode: 'tls-alpn-01', challenge: TLS, tls: true, want: ['tls-alpn-01'] },
    { desc: 'a lineage recorded as tls-alpn-01 keeps it under auto', mode: 'auto', challenge: TLS, tls: true, want: ['tls-alpn-01'] },
  ];
  for (const c of table) {
    it(c.desc, () => assert.deepEqual(daemonSolvers(c.mode, c.challenge, { http01, tlsAlpn01: c.tls ? tlsAlpn01 : undefined }).map((s) => s.type), c.want));
  }
});

describe('fallbackAfter: the rule from HTTP-01 to TLS-ALPN-01', () => {
  const failed = (details: Record<string, unknown>) => new PadlockError('ACME_CHALLENGE_FAILED', 'x', { details: { name: 'a.example', acmeType: 'connection', challengeType: 'http-01', offered: ['http-01', 'tls-alpn-01', 'dns-01'], ...details } });
  const both = [http01, tlsAlpn01];
  const table: Array<{ desc: string; err: unknown; solvers?: ChallengeSolver[]; want: ChallengeType[] | undefined }> = [
    { desc: 'port 80 unreachable (connection) and TLS-ALPN-01 offered: TLS-ALPN-01 next', err: failed({}), want: ['tls-alpn-01'] },
    { desc: 'dns problem: port 443 would not help', err: failed({ acmeType: 'dns' }), want: undefined },
    { desc: 'incorrectResponse (something else answers port 80): no fallback', err: failed({ acmeType: 'incorrectResponse' }), want: undefined },
    { desc: 'unauthorized: no fallback', err: failed({ acmeType: 'unauthorized' }), want: undefined },
    { desc: 'caa: no fallback', err: failed({ acmeType: 'caa' }), want: undefined },
    { desc: 'rateLimited: no fallback', err: failed({ acmeType: 'rateLimited' }), want: undefined },
    { desc: 'the CA does not offer TLS-ALPN-01 for the name', err: failed({ offered: ['http-01', 'dns-01'] }), want: undefined },
    { desc: 'TLS-ALPN-01 itself failed: the failure stands (one fallback)', err: failed({ challengeType: 'tls-alpn-01' }), want: undefined },
    { desc: 'no TLS-ALPN-01 solver configured (--challenge http-01)', err: failed({}), solvers: [http01], want: undefined },
    { desc: 'another error code (an unreachable CA)', err: new PadlockError('ACME_UNREACHABLE', 'x', { details: { acmeType: 'connection', challengeType: 'http-01' } }), want: undefined },
    { desc: 'not a PadlockError', err: new Error('boom'), want: undefined },
  ];
  for (const c of table) it(c.desc, () => assert.deepEqual(fallbackAfter(c.err, c.solvers ?? both)?.solvers.map((s) => s.type), c.want));

  it('says which name failed and which challenge comes next', () => {
    assert.deepEqual({ ...fallbackAfter(failed({}), both), solvers: undefined }, { solvers: undefined, name: 'a.example', from: 'http-01', to: 'tls-alpn-01' });
  });
});

describe('preferredChallenge: --preferred-challenges as certbot spells it', () => {
  const table: Array<{ desc: string; value: string | undefined; want: string; problem?: RegExp }> = [
    { desc: 'absent: http-01', value: undefined, want: 'http-01' },
    { desc: 'tls-alpn-01', value: 'tls-alpn-01', want: 'tls-alpn-01' },
    { desc: "certbot's short form tls-alpn", value: 'TLS-ALPN', want: 'tls-alpn-01' },
    { desc: "certbot's short form http", value: 'http', want: 'http-01' },
    { desc: 'the same type twice is one type', value: 'tls-alpn-01,tls-alpn', want: 'tls-alpn-01' },
    { desc: 'two types: refused, padlock answers one', value: 'tls-alpn-01,http-01', want: 'tls-alpn-01', problem: /name one challenge type/ },
    { desc: 'dns-01: refused with what padlock answers', value: 'dns-01', want: 'http-01', problem: /padlock answers http-01 or tls-alpn-01, not dns-01/ },
  ];
  for (const c of table) {
    it(c.desc, () => {
      const problems = new Problems();
      assert.equal(preferredChallenge(c.value, problems), c.want);
      if (c.problem) assert.throws(() => problems.throwIfAny(), c.problem);
      else problems.throwIfAny();
    });
  }
});
