import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  certId,
  parseRenewalInfo,
  fetchRenewalInfo,
  isAlreadyReplaced,
  isReplacesRefusal,
  type HttpResponse,
  type RenewalWindow,
} from '../../src/acme/ari.js';
import {
  clampRetryAfter,
  pickRenewalTime,
  choosePersistedTime,
  applyRenewalInfo,
  applyAriError,
  ariDecision,
  pastWindowForFreshCertificate,
  type AriState,
} from '../../src/certificates/ari-policy.js';
import { ariToJson, storedAriDecision } from '../../src/certificates/ari-poller.js';
import { checkProfile } from '../../src/acme/profiles.js';
import { AcmeProblemError, PadlockError } from '../../src/errors.js';
import { fixedClock } from '../../src/clock.js';
import { requireProgram } from '../support/programs.js';
import { seededRandom } from '../support/seeded.js';

const MIN = 60_000;
const HOUR = 3_600_000;
const DAY = 86_400_000;
const t0 = new Date('2026-03-01T00:00:00Z');
const at = (ms: number): Date => new Date(t0.getTime() + ms);
const win = (startMs: number, endMs: number): RenewalWindow => ({ start: at(startMs), end: at(endMs) });

/** The AKI keyIdentifier of RFC 9773's example (section 4.1). */
const RFC_AKI = '69:88:5B:6B:87:46:40:41:E1:B3:7B:84:7B:A0:AE:2C:DE:01:C8:D4';

function openssl(args: string[], cwd: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const bin = requireProgram('openssl', 'openssl', 'test certificates with a chosen AKI and serial');
    execFile(bin, args, { cwd, timeout: 20_000 }, (err, _out, stderr) => {
      if (!err) return resolve();
      reject(new Error(`openssl ${args.join(' ')} failed: ${stderr}`));
    });
  });
}

function expectPadlockError(fn: () => unknown, code: string, message?: RegExp): PadlockError {
  let caught: unknown;
  try {
    fn();
  } catch (err) {
    caught = err;
  }
  assert.ok(caught instanceof PadlockError, `expected a PadlockError, got ${String(caught)}`);
  assert.equal(caught.code, code);
  if (message) assert.match(caught.message, message);
  return caught;
}

describe('ARI CertID (RFC 9773 section 4.1)', () => {
  let dir = '';
  const leaves = new Map<string, string>();
  let caPem = '';
  let noAkiPem = '';

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'padlock-ari-test-'));
    // A CA whose subjectKeyIdentifier is the RFC's value; its leaves copy it into their AKI.
    await openssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', 'ca.key', '-out', 'ca.pem',
      '-days', '1', '-subj', '/CN=padlock ARI test CA', '-addext', `subjectKeyIdentifier=${RFC_AKI}`, '-addext', 'basicConstraints=critical,CA:TRUE'], dir);
    await openssl(['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', 'leaf.key', '-out', 'leaf.csr', '-subj', '/CN=leaf.example'], dir);
    await writeFile(join(dir, 'ext.cnf'), 'authorityKeyIdentifier=keyid:always\n');
    for (const serial of ['0x87654321', '0x12345678', '0x7f', '0x80']) {
      await openssl(['x509', '-req', '-in', 'leaf.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-set_serial', serial, '-days', '1',
        '-extfile', 'ext.cnf', '-out', `leaf-${serial}.pem`], dir);
      leaves.set(serial, await readFile(join(dir, `leaf-${serial}.pem`), 'utf8'));
    }
    caPem = await readFile(join(dir, 'ca.pem'), 'utf8');
    // Self-signed with no extensions at all (OpenSSL 3.0 `x509 -req` adds none): no AKI.
    await openssl(['x509', '-req', '-in', 'leaf.csr', '-signkey', 'leaf.key', '-set_serial', '5', '-days', '1', '-out', 'noaki.pem'], dir);
    noAkiPem = await readFile(join(dir, 'noaki.pem'), 'utf8');
  });
  after(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  const cases = [
    { desc: "gives the RFC's example CertID for serial 0x87654321 (DER sign byte put back)", serial: '0x87654321', want: 'aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE' },
    { desc: 'adds no sign byte to a serial whose high bit is clear', serial: '0x12345678', want: 'aYhba4dGQEHhs3uEe6CuLN4ByNQ.EjRWeA' },
    { desc: 'encodes the one-byte serial 0x7f as itself', serial: '0x7f', want: 'aYhba4dGQEHhs3uEe6CuLN4ByNQ.fw' },
    { desc: 'encodes the one-byte serial 0x80 with its sign byte (00 80)', serial: '0x80', want: 'aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIA' },
  ];
  for (const c of cases) {
    it(c.desc, () => {
      assert.equal(certId(leaves.get(c.serial)!), c.want);
    });
  }

  it('uses the leaf when given the leaf followed by its chain', () => {
    assert.equal(certId(leaves.get('0x87654321')! + caPem), 'aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE');
  });

  it('refuses a certificate without an Authority Key Identifier, saying it renews by lifetime instead', () => {
    expectPadlockError(() => certId(noAkiPem), 'CERT_UNPARSEABLE', /Authority Key Identifier.*lifetime/);
  });

  it('refuses text that holds no certificate', () => {
    expectPadlockError(() => certId('not a certificate'), 'CERT_UNPARSEABLE', /no PEM certificate/);
  });

  describe('the decision from what the store holds', () => {
    const now = new Date();
    /** The certificate facts, counting how often the PEM is read (each read is a full ASN.1 parse). */
    const facts = (pem: () => string) => {
      const counted = { reads: 0, notBefore: new Date(now.getTime() - HOUR), notAfter: new Date(now.getTime() + DAY) };
      return Object.defineProperty(counted, 'certPem', { get: () => (counted.reads++, pem()), enumerable: true }) as typeof counted & { certPem: string };
    };
    const stored = (pem: string) => ({
      ari: ariToJson({ window: { start: new Date(now.getTime() + 2 * HOUR), end: new Date(now.getTime() + 4 * HOUR) }, chosen: new Date(now.getTime() + 3 * HOUR), lastFetchAt: now, nextPollAt: new Date(now.getTime() + 6 * HOUR) }, certId(pem)),
    });
    const cases = [
      {
        desc: 'planning, nothing stored about ARI: no decision, and the certificate is not even parsed',
        state: () => null, known: true, pem: () => leaves.get('0x12345678')!,
        check: (d: ReturnType<typeof storedAriDecision>, reads: number) => {
          assert.equal(d, undefined);
          assert.equal(reads, 0);
        },
      },
      {
        desc: "planning, a stored window for this certificate: renew at the time chosen in it",
        state: () => stored(leaves.get('0x12345678')!), known: true, pem: () => leaves.get('0x12345678')!,
        check: (d: ReturnType<typeof storedAriDecision>) => assert.equal(d?.at.getTime(), now.getTime() + 3 * HOUR),
      },
      {
        desc: 'planning, a stored window for the previous certificate of the lineage: no decision',
        state: () => stored(leaves.get('0x7f')!), known: true, pem: () => leaves.get('0x12345678')!,
        check: (d: ReturnType<typeof storedAriDecision>) => assert.equal(d, undefined),
      },
      {
        desc: 'polling, nothing stored: a poll is due now',
        state: () => null, known: false, pem: () => leaves.get('0x12345678')!,
        check: (d: ReturnType<typeof storedAriDecision>) => assert.equal(d?.pollAt?.getTime(), now.getTime()),
      },
      {
        desc: 'polling, a certificate without an Authority Key Identifier: no decision (it renews by its lifetime)',
        state: () => null, known: false, pem: () => noAkiPem,
        check: (d: ReturnType<typeof storedAriDecision>) => assert.equal(d, undefined),
      },
    ];
    for (const c of cases) {
      it(c.desc, () => {
        const cert = facts(c.pem);
        c.check(storedAriDecision(c.state(), cert, now, { known: c.known }), cert.reads);
      });
    }
  });
});

describe('RenewalInfo responses (RFC 9773 section 4.2)', () => {
  const good = { suggestedWindow: { start: '2026-03-10T00:00:00Z', end: '2026-03-12T00:00:00Z' }, explanationURL: 'https://ca.example/docs/ari' };

  it("reads the window, the explanation and the CA's Retry-After in seconds", () => {
    const info = parseRenewalInfo(good, { 'retry-after': '21600' }, t0);
    assert.equal(info.window.start.toISOString(), '2026-03-10T00:00:00.000Z');
    assert.equal(info.window.end.toISOString(), '2026-03-12T00:00:00.000Z');
    assert.equal(info.explanationURL, 'https://ca.example/docs/ari');
    assert.equal(info.retryAfter?.toISOString(), at(6 * HOUR).toISOString());
  });

  const okCases: Array<{ desc: string; body: unknown; headers: Record<string, string>; check: (i: ReturnType<typeof parseRenewalInfo>) => void }> = [
    { desc: 'accepts the body as JSON text', body: JSON.stringify(good), headers: {}, check: (i: ReturnType<typeof parseRenewalInfo>) => assert.equal(i.retryAfter, undefined) },
    { desc: 'reads Retry-After as an HTTP date, whatever the header case', body: good, headers: { 'Retry-After': 'Sun, 01 Mar 2026 02:00:00 GMT' },
      check: (i: ReturnType<typeof parseRenewalInfo>) => assert.equal(i.retryAfter?.toISOString(), at(2 * HOUR).toISOString()) },
    { desc: 'accepts RFC 3339 times with fractions and offsets', body: { suggestedWindow: { start: '2026-03-10T01:00:00.5+01:00', end: '2026-03-10T00:30:00Z' } }, headers: {},
      check: (i: ReturnType<typeof parseRenewalInfo>) => assert.equal(i.window.start.toISOString(), '2026-03-10T00:00:00.500Z') },
    { desc: 'drops an explanationURL that is not an http(s) URL instead of showing it', body: { ...good, explanationURL: 'javascript:alert(1)' }, headers: {},
      check: (i: ReturnType<typeof parseRenewalInfo>) => assert.equal(i.explanationURL, undefined) },
    { desc: 'drops an unparseable Retry-After (the caller then polls in 6 hours)', body: good, headers: { 'retry-after': 'soon' },
      check: (i: ReturnType<typeof parseRenewalInfo>) => assert.equal(i.retryAfter, undefined) },
  ];
  for (const c of okCases) it(c.desc, () => c.check(parseRenewalInfo(c.body, c.headers, t0)));

  const badCases = [
    { desc: 'rejects a window whose end equals its start', body: { suggestedWindow: { start: '2026-03-10T00:00:00Z', end: '2026-03-10T00:00:00Z' } }, why: /not after start/ },
    { desc: 'rejects a window whose end precedes its start', body: { suggestedWindow: { start: '2026-03-12T00:00:00Z', end: '2026-03-10T00:00:00Z' } }, why: /not after start/ },
    { desc: 'rejects a response without suggestedWindow', body: { explanationURL: 'https://ca.example' }, why: /no suggestedWindow/ },
    { desc: 'rejects a start that is not an RFC 3339 time', body: { suggestedWindow: { start: 'tomorrow', end: '2026-03-12T00:00:00Z' } }, why: /start "tomorrow" is not an RFC 3339 time/ },
    { desc: 'rejects a date without a time', body: { suggestedWindow: { start: '2026-03-10T00:00:00Z', end: '2026-03-12' } }, why: /end "2026-03-12"/ },
    { desc: 'rejects numeric timestamps', body: { suggestedWindow: { start: 1767225600, end: 1767312000 } }, why: /not an RFC 3339 time/ },
    { desc: 'rejects a body that is not JSON', body: '<html>oops</html>', why: /not JSON/ },
    { desc: 'rejects a JSON null', body: null, why: /not a JSON object/ },
  ];
  for (const c of badCases) {
    it(c.desc, () => {
      const err = expectPadlockError(() => parseRenewalInfo(c.body, {}, t0, { url: 'https://ca.example/ari/x.y' }), 'ACME_PROBLEM', c.why);
      assert.equal(err.retryable, false);
      assert.match(err.message, /https:\/\/ca\.example\/ari\/x\.y.*asks again in 6 hours/);
    });
  }
});

describe('when to poll ARI again (RFC 9773 section 4.3)', () => {
  const cases = [
    { desc: 'polls again in 6 hours when the CA sent no Retry-After', retryAfter: undefined, wantMs: 6 * HOUR },
    { desc: 'treats a Retry-After under a minute as one minute', retryAfter: at(30_000), wantMs: MIN },
    { desc: 'treats a Retry-After in the past as one minute', retryAfter: at(-HOUR), wantMs: MIN },
    { desc: 'honours a Retry-After of 2 hours as sent', retryAfter: at(2 * HOUR), wantMs: 2 * HOUR },
    { desc: 'caps a Retry-After of 3 days at 12 hours', retryAfter: at(3 * DAY), wantMs: 12 * HOUR },
    { desc: 'treats an invalid date like no Retry-After', retryAfter: new Date(Number.NaN), wantMs: 6 * HOUR },
  ];
  for (const c of cases) {
    it(c.desc, () => assert.equal(clampRetryAfter(c.retryAfter, t0).getTime() - t0.getTime(), c.wantMs));
  }

  it('backs off 1, 10, 100 minutes after temporary errors, then every 6 hours', () => {
    let state: AriState | undefined;
    const waits: number[] = [];
    for (let i = 0; i < 5; i++) {
      state = applyAriError(state, { message: 'HTTP 503', retryable: true }, t0);
      waits.push(state.nextPollAt!.getTime() - t0.getTime());
    }
    assert.deepEqual(waits, [MIN, 10 * MIN, 100 * MIN, 6 * HOUR, 6 * HOUR]);
  });

  it('polls again in 6 hours after a long-term error, keeping the window already chosen', () => {
    const ok = applyRenewalInfo(undefined, { window: win(10 * DAY, 12 * DAY) }, t0, () => 0.5);
    const failed = applyAriError(ok, { message: 'invalid window', code: 'ACME_PROBLEM' }, at(HOUR));
    assert.equal(failed.nextPollAt?.toISOString(), at(7 * HOUR).toISOString());
    assert.equal(failed.chosen?.toISOString(), ok.chosen?.toISOString());
    assert.deepEqual(failed.lastError, { at: at(HOUR), message: 'invalid window', code: 'ACME_PROBLEM' });
  });

  it('clears the error streak after a success', () => {
    const failed = applyAriError(undefined, { message: 'HTTP 503', retryable: true }, t0);
    const ok = applyRenewalInfo(failed, { window: win(DAY, 2 * DAY), retryAfter: at(2 * HOUR) }, at(MIN), () => 0);
    assert.equal(ok.lastError, undefined);
    assert.equal(ok.consecutiveErrors, 0);
    assert.equal(ok.nextPollAt?.toISOString(), at(2 * HOUR).toISOString());
  });
});

describe('picking the renewal time inside the window', () => {
  const w = win(10 * DAY, 12 * DAY);

  it('picks the start for random 0 and stays before the end for random just under 1', () => {
    assert.equal(pickRenewalTime(w, () => 0).toISOString(), w.start.toISOString());
    assert.ok(pickRenewalTime(w, () => 0.999_999_999).getTime() < w.end.getTime());
    assert.ok(pickRenewalTime(w, () => 1).getTime() < w.end.getTime(), 'a random() of exactly 1 still lands inside');
  });

  it('spreads picks uniformly over the window (each tenth gets 8-12 % of 10 000 picks)', () => {
    const random = seededRandom(42);
    const buckets = new Array<number>(10).fill(0);
    const span = w.end.getTime() - w.start.getTime();
    for (let i = 0; i < 10_000; i++) {
      const t = pickRenewalTime(w, random).getTime();
      assert.ok(t >= w.start.getTime() && t < w.end.getTime());
      const b = Math.floor(((t - w.start.getTime()) / span) * 10);
      buckets[b] = buckets[b]! + 1;
    }
    for (const n of buckets) assert.ok(n >= 800 && n <= 1200, `bucket sizes ${buckets.join(',')}`);
  });

  const choiceCases = [
    { desc: 'keeps the persisted time when the CA sends the same window again', prevWindow: w, window: win(10 * DAY, 12 * DAY), wantKept: true },
    { desc: 'picks again when the CA moves the window', prevWindow: w, window: win(5 * DAY, 6 * DAY), wantKept: false },
  ];
  for (const c of choiceCases) {
    it(c.desc, () => {
      const prev = { window: c.prevWindow, chosen: at(11 * DAY) };
      const next = choosePersistedTime(prev, c.window, t0, () => 0);
      if (c.wantKept) assert.equal(next.chosen.toISOString(), at(11 * DAY).toISOString());
      else assert.equal(next.chosen.toISOString(), c.window.start.toISOString());
    });
  }

  const nowCases = [
    { desc: 'renews now when a new window is already over (mass revocation)', window: win(-2 * HOUR, -HOUR) },
    { desc: 'renews now when a new window has already started', window: win(-HOUR, DAY) },
  ];
  for (const c of nowCases) {
    it(c.desc, () => assert.equal(choosePersistedTime(undefined, c.window, t0, () => 0.9).chosen.toISOString(), t0.toISOString()));
  }

  it('does not re-pick across a restart: applying the same answer twice keeps the first pick', () => {
    const first = applyRenewalInfo(undefined, { window: w }, t0, () => 0.25);
    const again = applyRenewalInfo(first, { window: win(10 * DAY, 12 * DAY) }, at(HOUR), () => 0.75);
    assert.equal(again.chosen?.toISOString(), first.chosen?.toISOString());
    assert.equal(first.chosen?.toISOString(), at(10.5 * DAY).toISOString());
  });
});

describe('the ARI renewal decision', () => {
  const cert = { notBefore: t0, notAfter: at(90 * DAY) };
  const fetched = (window: RenewalWindow, chosen: Date, extra: Partial<AriState> = {}): AriState => ({
    window, chosen, lastFetchAt: t0, nextPollAt: at(6 * HOUR), ...extra,
  });
  const cases: Array<{ desc: string; state: AriState | undefined; now: Date; replaced?: boolean; want: { due: boolean; reason: string; at?: Date; pollAt?: Date | null } }> = [
    { desc: 'asks the CA right after issuance and meanwhile renews a third before expiry', state: undefined, now: t0,
      want: { due: false, reason: 'lifetime-share', at: at(60 * DAY), pollAt: t0 } },
    { desc: 'waits for the picked time inside a future window', state: fetched(win(60 * DAY, 62 * DAY), at(61 * DAY)), now: at(DAY),
      want: { due: false, reason: 'ari-window', at: at(61 * DAY), pollAt: at(6 * HOUR) } },
    { desc: 'renews once the picked time has passed', state: fetched(win(60 * DAY, 62 * DAY), at(61 * DAY)), now: at(61 * DAY + MIN),
      want: { due: true, reason: 'ari-window', at: at(61 * DAY) } },
    { desc: 'renews now when the window is over', state: fetched(win(5 * DAY, 6 * DAY), at(5 * DAY)), now: at(7 * DAY),
      want: { due: true, reason: 'ari-past-window', at: at(5 * DAY) } },
    { desc: 'follows an ARI window earlier than the lifetime rule (the CA asked)', state: fetched(win(10 * DAY, 11 * DAY), at(10 * DAY)), now: at(10 * DAY),
      want: { due: true, reason: 'ari-window' } },
    { desc: 'falls back to the lifetime rule while ARI fails, polling 6 hours after the error', state: applyAriError(undefined, { message: 'HTTP 404' }, at(DAY)), now: at(61 * DAY),
      want: { due: true, reason: 'lifetime-share', pollAt: at(DAY + 6 * HOUR) } },
    { desc: 'never polls for an expired certificate and renews it at once', state: fetched(win(60 * DAY, 62 * DAY), at(61 * DAY)), now: at(91 * DAY),
      want: { due: true, reason: 'expired', pollAt: null } },
    { desc: 'never polls or renews a certificate already replaced', state: fetched(win(5 * DAY, 6 * DAY), at(5 * DAY)), now: at(7 * DAY), replaced: true,
      want: { due: false, reason: 'replaced', pollAt: null } },
    { desc: 'does not schedule a poll after the certificate expires', state: fetched(win(60 * DAY, 62 * DAY), at(61 * DAY), { nextPollAt: at(91 * DAY) }), now: at(DAY),
      want: { due: false, reason: 'ari-window', pollAt: null } },
  ];
  for (const c of cases) {
    it(c.desc, () => {
      const d = ariDecision(c.state, { ...cert, replaced: c.replaced ?? false }, c.now);
      assert.equal(d.due, c.want.due);
      assert.equal(d.reason, c.want.reason);
      if (c.want.at) assert.equal(d.at.toISOString(), c.want.at.toISOString());
      if (c.want.pollAt === null) assert.equal(d.pollAt, undefined);
      else if (c.want.pollAt) assert.equal(d.pollAt?.toISOString(), c.want.pollAt.toISOString());
    });
  }

  it("passes on the CA's explanationURL for the operator", () => {
    const state = applyRenewalInfo(undefined, { window: win(-HOUR, HOUR), explanationURL: 'https://ca.example/incident/42' }, t0, () => 0);
    const d = ariDecision(state, cert, t0);
    assert.equal(d.due, true);
    assert.equal(d.explanationURL, 'https://ca.example/incident/42');
  });
});

describe('the ARI loop guard', () => {
  const cert = { notBefore: t0, notAfter: at(90 * DAY) };
  // A CA whose window for a certificate padlock has just obtained is already over.
  const pastForFresh = applyRenewalInfo(undefined, { window: win(-2 * HOUR, -HOUR) }, at(MIN), () => 0);
  const cases: Array<{ desc: string; state: AriState; last?: Date; now: Date; due: boolean; at?: Date }> = [
    { desc: 'renews on a past window when padlock never renewed this lineage because of ARI', state: pastForFresh, now: at(2 * MIN), due: true },
    { desc: 'holds a second ARI renewal within the hour when the window has not moved', state: pastForFresh, last: t0, now: at(2 * MIN), due: false, at: at(HOUR) },
    { desc: 'lets it go an hour after the last ARI renewal', state: pastForFresh, last: t0, now: at(HOUR + MIN), due: true },
    {
      desc: 'renews at once when the CA moved the window since padlock first saw it (a revocation event)',
      state: applyRenewalInfo(pastForFresh, { window: win(-30 * MIN, -10 * MIN) }, at(2 * MIN), () => 0), last: t0, now: at(3 * MIN), due: true,
    },
  ];
  for (const c of cases) {
    it(c.desc, () => {
      const d = ariDecision(c.state, cert, c.now, c.last);
      assert.equal(d.due, c.due);
      if (c.at) assert.equal(d.at.toISOString(), c.at.toISOString());
      if (!c.due) assert.ok(d.loopGuard, 'the decision says the guard holds it');
    });
  }
  it('never holds an expired certificate', () => {
    assert.equal(ariDecision(pastForFresh, { notBefore: t0, notAfter: at(MIN) }, at(2 * MIN), t0).due, true);
  });
  it('remembers the first window it saw for a certificate', () => {
    const moved = applyRenewalInfo(pastForFresh, { window: win(DAY, 2 * DAY) }, at(HOUR), () => 0);
    assert.equal(moved.firstWindow?.start.toISOString(), at(-2 * HOUR).toISOString());
    assert.equal(moved.window?.start.toISOString(), at(DAY).toISOString());
  });
  it('tells a fresh certificate with a past window from an old one', () => {
    assert.equal(pastWindowForFreshCertificate(pastForFresh, t0, at(2 * MIN)), true);
    assert.equal(pastWindowForFreshCertificate(pastForFresh, at(-2 * HOUR), at(2 * MIN)), false);
  });
});

describe('which refusals of `replaces` are worth one more order without it (RFC 9773 section 5)', () => {
  const problem = (type: string, detail: string, httpStatus: number) => new AcmeProblemError({ type: `urn:ietf:params:acme:error:${type}`, detail }, { httpStatus });
  const cases = [
    { desc: 'alreadyReplaced', err: problem('alreadyReplaced', 'already replaced', 409), retry: true },
    { desc: 'a malformed problem naming replaces', err: problem('malformed', 'cannot find the certificate named in replaces', 400), retry: true },
    { desc: 'a 503 (a CA outage): no', err: problem('serverInternal', 'down for maintenance', 503), retry: false },
    { desc: 'a rate limit: no', err: problem('rateLimited', 'too many', 429), retry: false },
    { desc: 'a malformed problem about something else: no', err: problem('malformed', 'bad identifiers', 400), retry: false },
    { desc: 'a transport failure: no', err: new PadlockError('ACME_UNREACHABLE', 'reset'), retry: false },
  ];
  for (const c of cases) it(c.desc, () => assert.equal(isReplacesRefusal(c.err), c.retry));
});

describe('fetching RenewalInfo through an injected transport', () => {
  let dir = '';
  let leaf = '';
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'padlock-ari-fetch-'));
    await openssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', 'ca.key', '-out', 'ca.pem',
      '-days', '1', '-subj', '/CN=ca', '-addext', `subjectKeyIdentifier=${RFC_AKI}`], dir);
    await openssl(['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', 'l.key', '-out', 'l.csr', '-subj', '/CN=l'], dir);
    await writeFile(join(dir, 'ext.cnf'), 'authorityKeyIdentifier=keyid:always\n');
    await openssl(['x509', '-req', '-in', 'l.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-set_serial', '0x87654321', '-days', '1', '-extfile', 'ext.cnf', '-out', 'l.pem'], dir);
    leaf = await readFile(join(dir, 'l.pem'), 'utf8');
  });
  after(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  const source = (resp: HttpResponse, directory: Record<string, unknown> = { renewalInfo: 'https://ca.example/renewal-info/' }) => {
    const urls: string[] = [];
    return { urls, src: { directory: async () => directory, get: async (url: string) => (urls.push(url), resp) } };
  };

  it("GETs renewalInfo/<CertID> and returns the CA's window", async () => {
    const { urls, src } = source({ status: 200, headers: { 'retry-after': '60' }, body: { suggestedWindow: { start: '2026-03-10T00:00:00Z', end: '2026-03-11T00:00:00Z' } } });
    const info = await fetchRenewalInfo(src, leaf, fixedClock(t0));
    assert.deepEqual(urls, ['https://ca.example/renewal-info/aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE']);
    assert.equal(info.retryAfter?.toISOString(), at(MIN).toISOString());
  });

  const errorCases: Array<{ desc: string; resp: HttpResponse; retryable: boolean; problem: boolean }> = [
    { desc: "keeps the CA's problem document on a 404, as a long-term error", resp: { status: 404, headers: {}, body: { type: 'urn:ietf:params:acme:error:malformed', detail: 'no such certificate' } }, retryable: false, problem: true },
    { desc: 'marks a 503 as temporary', resp: { status: 503, headers: { 'retry-after': '120' }, body: 'busy' }, retryable: true, problem: false },
  ];
  for (const c of errorCases) {
    it(c.desc, async () => {
      const { src } = source(c.resp);
      await assert.rejects(fetchRenewalInfo(src, leaf, fixedClock(t0)), (err: unknown) => {
        assert.ok(err instanceof PadlockError);
        assert.equal(err.retryable, c.retryable);
        assert.equal(err instanceof AcmeProblemError, c.problem);
        return true;
      });
    });
  }

  it('says so when the CA offers no ARI', async () => {
    const { src, urls } = source({ status: 200, headers: {}, body: {} }, { newOrder: 'https://ca.example/new-order' });
    await assert.rejects(fetchRenewalInfo(src, leaf, fixedClock(t0)), /offers no renewalInfo/);
    assert.deepEqual(urls, []);
  });

  it('recognises alreadyReplaced (HTTP 409) so the order can be retried without replaces', () => {
    const err = new AcmeProblemError({ type: 'urn:ietf:params:acme:error:alreadyReplaced', detail: 'already replaced' }, { httpStatus: 409 });
    assert.equal(isAlreadyReplaced(new Error('wrapped', { cause: err })), true);
    assert.equal(isAlreadyReplaced(new AcmeProblemError({ type: 'urn:ietf:params:acme:error:malformed' }, {})), false);
  });
});

describe('certificate profiles (draft-ietf-acme-profiles)', () => {
  const meta = { termsOfService: 'https://ca.example/tos', profiles: { classic: 'https://ca.example/classic', shortlived: 'https://ca.example/shortlived' } };
  const cases = [
    { desc: 'asks for a preferred profile the CA offers', meta, wanted: { profile: 'shortlived' }, want: { profile: 'shortlived', warning: undefined } },
    { desc: "falls back to the CA's default with a warning when the preferred profile is not offered", meta, wanted: { profile: 'tlsserver' },
      want: { profile: undefined, warning: /"tlsserver" for a\.example is not offered.*"classic", "shortlived".*default profile/ } },
    { desc: 'warns when the CA offers no profiles at all', meta: { termsOfService: 'x' }, wanted: { profile: 'classic' }, want: { profile: undefined, warning: /offers no profiles/ } },
    { desc: 'asks for a required profile the CA offers', meta, wanted: { requiredProfile: 'classic' }, want: { profile: 'classic', warning: undefined } },
    { desc: 'asks for no profile when none is wanted', meta: undefined, wanted: {}, want: { profile: undefined, warning: undefined } },
  ];
  for (const c of cases) {
    it(c.desc, () => {
      const got = checkProfile(c.meta, c.wanted, { names: ['a.example'] });
      assert.equal(got.profile, c.want.profile);
      if (c.want.warning instanceof RegExp) assert.match(got.warning ?? '', c.want.warning);
      else assert.equal(got.warning, undefined);
    });
  }

  const failCases = [
    { desc: 'fails clearly when a required profile is not offered, naming those that are', meta, why: /required profile "tlsserver" for a\.example is not offered by the CA at https:\/\/ca\.example\/dir \(it offers "classic", "shortlived"\)/ },
    { desc: 'fails clearly when a required profile meets a CA without profiles', meta: {}, why: /it offers no profiles/ },
  ];
  for (const c of failCases) {
    it(c.desc, () => {
      expectPadlockError(() => checkProfile(c.meta, { requiredProfile: 'tlsserver' }, { server: 'https://ca.example/dir', names: ['a.example'] }), 'CONFIG_INVALID', c.why);
    });
  }
});

describe('ARI errors and Retry-After', () => {
  const now = new Date('2026-11-26T12:00:00Z');
  it('does not poll again before the CA Retry-After after a 429, and still clamps it to 12 hours', () => {
    const twoHours = new Date(now.getTime() + 2 * 3600_000);
    assert.equal(applyAriError(undefined, { message: 'rate limited', retryable: true, retryAfter: twoHours }, now).nextPollAt?.toISOString(), twoHours.toISOString());
    const twoDays = new Date(now.getTime() + 48 * 3600_000);
    assert.equal(applyAriError(undefined, { message: 'rate limited', retryable: true, retryAfter: twoDays }, now).nextPollAt?.toISOString(), new Date(now.getTime() + 12 * 3600_000).toISOString());
  });
});

