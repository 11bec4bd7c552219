/**
 * Notifications end to end: a real SMTP server (the smtp-server package,
 * in-process on 127.0.0.1, port 0), a real HTTP webhook receiver, the
 * Notifier with a fake clock and fake backoff timers, and the
 * `padlock notify test` command in its own process.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SMTPServer, type SMTPServerOptions, type SMTPServerSession } from 'smtp-server';
import { Notifier, type NotifierTimers } from '../../src/notify/notifier.js';
import { createEmailChannel, type EmailSettings } from '../../src/notify/email.js';
import { createWebhookChannel } from '../../src/notify/webhook.js';
import { channelsFromConfig, parseNotifyConfig } from '../../src/notify/config.js';
import type { Channel, NotifyEvent } from '../../src/notify/events.js';
import { MemoryStore } from '../../src/store/memory-store.js';
import { createLogger, type Logger } from '../../src/log.js';
import { PadlockError } from '../../src/errors.js';
import { TestPki, DAY } from '../support/certs.js';
import { runCli, repoRoot } from '../support/cli.js';

const HOUR = 3_600_000;

// ---------- a real SMTP server ----------

interface Received {
  from: string;
  to: string[];
  raw: string;
  secure: boolean;
  user: string | undefined;
}

interface Smtp {
  port: number;
  mails: Received[];
  /** RCPT TO commands seen, accepted or not. */
  rcptAttempts: number;
  close(): Promise<void>;
}

async function startSmtp(options: Partial<SMTPServerOptions> & { rejectRcpt?: (attempt: number) => boolean } = {}): Promise<Smtp> {
  const state: Smtp = { port: 0, mails: [], rcptAttempts: 0, close: async () => {} };
  const { rejectRcpt, ...serverOptions } = options;
  const server = new SMTPServer({
    logger: false,
    authOptional: true,
    disabledCommands: ['STARTTLS'],
    ...serverOptions,
    onRcptTo(_address, _session, cb) {
      state.rcptAttempts++;
      if (rejectRcpt?.(state.rcptAttempts)) {
        const err = Object.assign(new Error('5.1.1 Mailbox unavailable'), { responseCode: 550 });
        return cb(err);
      }
      cb();
    },
    onData(stream, session: SMTPServerSession, cb) {
      const chunks: Buffer[] = [];
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('end', () => {
        state.mails.push({
          from: session.envelope.mailFrom ? session.envelope.mailFrom.address : '',
          to: session.envelope.rcptTo.map((r) => r.address),
          raw: Buffer.concat(chunks).toString('utf8'),
          secure: session.secure,
          user: session.user,
        });
        cb();
      });
    },
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  state.port = (server.server.address() as AddressInfo).port;
  state.close = () => new Promise<void>((resolve) => server.close(() => resolve()));
  return state;
}

// ---------- a small MIME reader (enough for what nodemailer writes) ----------

interface Parsed {
  headers: Map<string, string>;
  text: string;
  html: string;
}

function parseHeaders(block: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of block.replace(/\r\n[ \t]+/g, ' ').split(/\r\n/)) {
    const i = line.indexOf(':');
    if (i > 0) out.set(line.slice(0, i).toLowerCase(), line.slice(i + 1).trim());
  }
  return out;
}

function decodeBody(body: string, encoding: string | undefined): string {
  switch ((encoding ?? '7bit').toLowerCase()) {
    case 'quoted-printable': {
      const bytes: number[] = [];
      const s = body.replace(/=\r\n/g, '');
      for (let i = 0; i < s.length; i++) {
        if (s[i] === '=' && /^[0-9A-F]{2}$/i.test(s.slice(i + 1, i + 3))) {
          bytes.push(parseInt(s.slice(i + 1, i + 3), 16));
          i += 2;
        } else bytes.push(...Buffer.from(s[i]!, 'utf8'));
      }
      return Buffer.from(bytes).toString('utf8');
    }
    case 'base64':
      return Buffer.from(body.replace(/\s+/g, ''), 'base64').toString('utf8');
    default:
      return body;
  }
}

function decodeWords(value: string): string {
  return value.replace(/=\?utf-8\?([QB])\?([^?]*)\?=\s*/gi, (_m, enc: string, data: string) =>
    enc.toUpperCase() === 'B' ? Buffer.from(data, 'base64').toString('utf8') : decodeBody(data.replace(/_/g, ' '), 'quoted-printable'));
}

function parseMail(raw: string): Parsed {
  const split = raw.indexOf('\r\n\r\n');
  const headers = parseHeaders(raw.slice(0, split));
  const body = raw.slice(split + 4);
  const boundary = /boundary="?([^";]+)"?/.exec(headers.get('content-type') ?? '')?.[1];
  const out: Parsed = { headers, text: '', html: '' };
  assert.ok(boundary, 'a multipart message (text and HTML)');
  for (const part of body.split(`--${boundary}`).slice(1)) {
    if (part.startsWith('--')) break;
    const p = part.replace(/^\r\n/, '');
    const end = p.indexOf('\r\n\r\n');
    const ph = parseHeaders(p.slice(0, end));
    const content = decodeBody(p.slice(end + 4).replace(/\r\n$/, ''), ph.get('content-transfer-encoding')).replace(/\r\n/g, '\n');
    if (ph.get('content-type')?.startsWith('text/plain')) out.text = content;
    if (ph.get('content-type')?.startsWith('text/html')) out.html = content;
  }
  return out;
}

// ---------- fake time, captured logs ----------

function fakeTime(startIso = '2026-03-01T12:00:00Z') {
  let now = Date.parse(startIso);
  const sleeps: number[] = [];
  const clock = { now: () => new Date(now) };
  const timers: NotifierTimers = {
    sleep: async (ms) => {
      sleeps.push(ms);
      now += ms;
    },
  };
  return { clock, timers, sleeps, advance: (ms: number) => (now += ms), at: (ms: number) => new Date(now + ms) };
}

function captureLogs(): { logger: Logger; lines: string[]; records: () => Array<Record<string, unknown>> } {
  const lines: string[] = [];
  return { logger: createLogger({ level: 'debug', write: (l) => lines.push(l) }), lines, records: () => lines.map((l) => JSON.parse(l) as Record<string, unknown>) };
}

function emailSettings(smtp: Smtp, extra: Partial<EmailSettings> = {}): EmailSettings {
  return { smtpHost: '127.0.0.1', smtpPort: smtp.port, smtpTls: 'none', notifyFrom: 'padlock@example.net', notifyTo: ['ops@example.net'], timeoutMs: 5000, ...extra };
}

const names = ['shop.example.com', 'www.shop.example.com'];
function failedEvent(t: { at: (ms: number) => Date }, extra: Partial<NotifyEvent> = {}): NotifyEvent {
  return {
    kind: 'renewal_failed',
    name: 'shop.example.com',
    names,
    email: 'owner@shop.example.com',
    errorCode: 'ACME_CHALLENGE_FAILED',
    acmeType: 'connection',
    detail: '203.0.113.7: Timeout during connect (likely firewall problem) <script>x</script>',
    attempts: 3,
    firstFailureAt: t.at(-3 * HOUR),
    nextAttemptAt: t.at(100 * 60_000),
    notAfter: t.at(20 * DAY),
    ...extra,
  } as NotifyEvent;
}

// ---------- email ----------

describe('email notifications over a real SMTP server', () => {
  let smtp: Smtp;
  before(async () => {
    smtp = await startSmtp();
  });
  after(async () => smtp.close());

  it('sends text and HTML to the global and the per-certificate recipients', async () => {
    smtp.mails.length = 0;
    const t = fakeTime();
    const notifier = new Notifier({ channels: [createEmailChannel(emailSettings(smtp))], clock: t.clock, logger: captureLogs().logger, timers: t.timers });
    notifier.notify(failedEvent(t));
    await notifier.flush();
    await notifier.close();
    assert.equal(smtp.mails.length, 1);
    const mail = smtp.mails[0]!;
    assert.deepEqual(mail.to.sort(), ['ops@example.net', 'owner@shop.example.com']);
    assert.equal(mail.from, 'padlock@example.net');
    const parsed = parseMail(mail.raw);
    assert.equal(decodeWords(parsed.headers.get('subject')!), '[padlock] Certificate renewal failed for shop.example.com (connection)');
    assert.match(parsed.headers.get('to')!, /ops@example\.net.*owner@shop\.example\.com/);
    assert.equal(parsed.headers.get('x-padlock-event'), 'renewal_failed');
    assert.match(parsed.text, /Names: +shop\.example\.com, www\.shop\.example\.com/);
    assert.match(parsed.text, /Timeout during connect \(likely firewall problem\) <script>x<\/script>/);
    assert.match(parsed.text, /ACME error type: +connection/);
    assert.match(parsed.text, /Next attempt: +2026-03-01 13:40 UTC/);
    assert.match(parsed.text, /Certificate expires: +2026-03-21 12:00 UTC/);
    assert.match(parsed.text, /Likeliest fix: .*port 80 is open/);
    assert.match(parsed.html, /Timeout during connect \(likely firewall problem\) &lt;script&gt;x&lt;\/script&gt;/);
    assert.doesNotMatch(parsed.html, /<script>/);
    assert.match(parsed.html, /<strong>Likeliest fix:<\/strong>/);
  });

  it('sends the same event once, a reminder after 24 h, and nothing again after a restart', async () => {
    smtp.mails.length = 0;
    const t = fakeTime();
    const store = new MemoryStore();
    // certificates/ owns other keys of the same state; they must survive.
    await store.writeState('shop.example.com', { failure: { failures: 3 } });
    const make = () => new Notifier({ channels: [createEmailChannel(emailSettings(smtp))], store, clock: t.clock, logger: captureLogs().logger, timers: t.timers });
    const first = make();
    first.notify(failedEvent(t));
    first.notify(failedEvent(t));
    await first.flush();
    assert.equal(smtp.mails.length, 1, 'the same event twice gives one mail');
    t.advance(2 * HOUR);
    first.notify(failedEvent(t, { attempts: 4 } as Partial<NotifyEvent>));
    await first.flush();
    assert.equal(smtp.mails.length, 1, 'still one mail two hours later');
    await first.close();

    const state = await store.readState('shop.example.com');
    assert.deepEqual(state?.['failure'], { failures: 3 }, 'the failure record is kept as it was');
    assert.ok(state?.['notify'], 'the dedupe state is persisted under notify');

    const restarted = make();
    restarted.notify(failedEvent(t, { attempts: 5 } as Partial<NotifyEvent>));
    await restarted.flush();
    assert.equal(smtp.mails.length, 1, 'a restart does not send it again');

    t.advance(22 * HOUR);
    restarted.notify(failedEvent(t, { attempts: 6 } as Partial<NotifyEvent>));
    await restarted.flush();
    assert.equal(smtp.mails.length, 2, 'a daily reminder 24 h after the first mail');
    const reminder = parseMail(smtp.mails[1]!.raw);
    assert.match(decodeWords(reminder.headers.get('subject')!), /^\[padlock\] Still failing: /);
    assert.match(reminder.text, /^Reminder: this problem is still going on\./);

    // Recovery: sent because an alert went out; closes the episode.
    restarted.notify({ kind: 'recovered', name: 'shop.example.com', names, notAfter: t.at(90 * DAY), failures: 6 });
    // Another certificate that recovers without any alert sent: no mail.
    restarted.notify({ kind: 'recovered', name: 'quiet.example.com', names: ['quiet.example.com'], notAfter: t.at(90 * DAY), failures: 1 });
    await restarted.flush();
    await restarted.close();
    assert.equal(smtp.mails.length, 3);
    const recovered = parseMail(smtp.mails[2]!.raw);
    assert.equal(decodeWords(recovered.headers.get('subject')!), '[padlock] Certificate for shop.example.com is valid again');
    assert.deepEqual(smtp.mails[2]!.to, ['ops@example.net'], 'no per-certificate address on this event');
  });
});

describe('delivery failures', () => {
  it('retries a 550 rejection with backoff, logs the SMTP code, and leaves the caller alone', async () => {
    const smtp = await startSmtp({ rejectRcpt: () => true });
    try {
      const t = fakeTime();
      const logs = captureLogs();
      const notifier = new Notifier({
        channels: [createEmailChannel(emailSettings(smtp))],
        store: new MemoryStore(),
        clock: t.clock,
        logger: logs.logger,
        retry: { attempts: 4, initialMs: 1000, maxMs: 3000 },
        timers: t.timers,
      });
      const started = performance.now();
      assert.doesNotThrow(() => notifier.notify(failedEvent(t, { email: undefined } as Partial<NotifyEvent>)));
      assert.ok(performance.now() - started < 50, 'notify returns at once');
      await notifier.flush();
      assert.equal(smtp.rcptAttempts, 4, 'tried 4 times');
      assert.deepEqual(t.sleeps, [1000, 2000, 3000], 'waits double, capped at maxMs');
      const records = logs.records().filter((r) => r['component'] === 'notify');
      const warns = records.filter((r) => r['level'] === 'warn');
      assert.equal(warns.length, 3);
      for (const w of warns) {
        assert.equal(w['responseCode'], 550);
        assert.equal(w['code'], 'EENVELOPE');
        assert.equal(w['name'], 'shop.example.com');
      }
      const gaveUp = records.find((r) => r['level'] === 'error' && /giving up/.test(String(r['msg'])));
      assert.ok(gaveUp, 'the final failure is logged as an error');
      assert.equal(gaveUp['responseCode'], 550);
      assert.match(String(gaveUp['error']), /550|Mailbox unavailable/);

      // Nothing was delivered, so nothing is recorded: the next event tries again.
      notifier.notify(failedEvent(t, { email: undefined } as Partial<NotifyEvent>));
      await notifier.flush();
      assert.equal(smtp.rcptAttempts, 8);
      await notifier.close();
    } finally {
      await smtp.close();
    }
  });

  it('delivers on a later attempt when the rejection is temporary', async () => {
    const smtp = await startSmtp({ rejectRcpt: (n) => n <= 2 });
    try {
      const t = fakeTime();
      const notifier = new Notifier({ channels: [createEmailChannel(emailSettings(smtp))], clock: t.clock, logger: captureLogs().logger, retry: { attempts: 5, initialMs: 500, maxMs: 10_000 }, timers: t.timers });
      notifier.notify(failedEvent(t, { email: undefined } as Partial<NotifyEvent>));
      await notifier.flush();
      await notifier.close();
      assert.equal(smtp.mails.length, 1);
      assert.deepEqual(t.sleeps, [500, 1000]);
    } finally {
      await smtp.close();
    }
  });

  it('gives up on a server that is not there within the retry budget', async () => {
    const smtp = await startSmtp();
    const port = smtp.port;
    await smtp.close();
    const t = fakeTime();
    const logs = captureLogs();
    const notifier = new Notifier({ channels: [createEmailChannel({ ...emailSettings(smtp), smtpPort: port })], clock: t.clock, logger: logs.logger, retry: { attempts: 2, initialMs: 10, maxMs: 10 }, timers: t.timers });
    notifier.notify(failedEvent(t));
    await notifier.flush();
    await notifier.close();
    assert.deepEqual(t.sleeps, [10]);
    assert.ok(logs.records().some((r) => r['level'] === 'error' && ['ECONNECTION', 'ESOCKET'].includes(String(r['code']))), logs.lines.join('\n'));
  });
});

describe('SMTP AUTH and TLS', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'padlock-notify-'));
  });
  after(async () => rm(dir, { recursive: true, force: true }));

  const PASSWORD = 'Sup3r-s3cret-pässword';

  it('logs in with the user and the password file, and never logs the password', async () => {
    const smtp = await startSmtp({
      authOptional: false,
      allowInsecureAuth: true,
      authMethods: ['PLAIN', 'LOGIN'],
      onAuth(auth, _session, cb) {
        if (auth.username === 'padlock' && auth.password === PASSWORD) return cb(null, { user: auth.username });
        cb(Object.assign(new Error('5.7.8 Authentication credentials invalid'), { responseCode: 535 }));
      },
    });
    try {
      const good = join(dir, 'smtp-password');
      await writeFile(good, PASSWORD + '\n', { mode: 0o600 });
      const bad = join(dir, 'wrong-password');
      await writeFile(bad, 'not-it-' + PASSWORD + '\n', { mode: 0o600 });
      const t = fakeTime();
      const logs = captureLogs();
      const config = (file: string) => parseNotifyConfig({ flags: { smtpHost: '127.0.0.1', smtpPort: smtp.port, smtpTls: 'none', smtpUser: 'padlock', smtpPasswordFile: file, notifyFrom: 'padlock@example.net', notifyTo: ['ops@example.net'] } });

      const ok = new Notifier({ channels: await channelsFromConfig(config(good), {}), clock: t.clock, logger: logs.logger, timers: t.timers });
      assert.deepEqual((await ok.test()).map((r) => r.ok), [true]);
      ok.notify(failedEvent(t));
      await ok.flush();
      await ok.close();
      assert.equal(smtp.mails.length, 2);
      assert.ok(smtp.mails.every((m) => m.user === 'padlock'), 'both mails were sent after AUTH');

      const wrong = new Notifier({ channels: await channelsFromConfig(config(bad), {}), clock: t.clock, logger: logs.logger, retry: { attempts: 2, initialMs: 1, maxMs: 1 }, timers: t.timers });
      const [result] = await wrong.test();
      assert.equal(result!.ok, false);
      assert.match(result!.error!, /535|Invalid login|credentials/i);
      wrong.notify(failedEvent(t, { name: 'other.example.com' } as Partial<NotifyEvent>));
      await wrong.flush();
      await wrong.close();
      assert.ok(logs.records().some((r) => r['responseCode'] === 535 && r['code'] === 'EAUTH'), 'the 535 is logged with its code');

      const all = logs.lines.join('\n') + (result!.error ?? '');
      assert.ok(logs.lines.length > 3, 'something was logged');
      for (const secret of [PASSWORD, 'not-it-' + PASSWORD, Buffer.from(PASSWORD).toString('base64'), Buffer.from(`\u0000padlock\u0000${PASSWORD}`).toString('base64')]) {
        assert.ok(!all.includes(secret), `the logs never contain ${JSON.stringify(secret.slice(0, 4))}…`);
      }
    } finally {
      await smtp.close();
    }
  });

  it('names a missing password file as a config error', async () => {
    const missing = join(dir, 'nope');
    const config = parseNotifyConfig({ flags: { smtpHost: '127.0.0.1', smtpUser: 'padlock', smtpPasswordFile: missing, notifyFrom: 'padlock@example.net', notifyTo: ['ops@example.net'] } });
    await assert.rejects(channelsFromConfig(config, {}), (err: unknown) => {
      assert.ok(err instanceof PadlockError);
      assert.equal(err.code, 'CONFIG_INVALID');
      assert.ok(err.message.includes(missing), err.message);
      assert.match(err.message, /ENOENT/);
      return true;
    });
  });

  it('reports every settings problem at once', () => {
    assert.throws(
      () => parseNotifyConfig({ flags: { smtpPort: 'eighty', smtpTls: 'ssl', notifyTo: ['not-an-address'] }, env: { webhookUrl: 'ftp://x' } }),
      (err: unknown) => {
        assert.ok(err instanceof PadlockError && err.code === 'CONFIG_INVALID');
        const problems = err.details['problems'] as string[];
        assert.equal(problems.length, 4, problems.join('\n'));
        assert.match(err.message, /--smtp-port/);
        assert.match(err.message, /--smtp-tls/);
        assert.match(err.message, /--notify-to/);
        assert.match(err.message, /PADLOCK_WEBHOOK_URL/);
        return true;
      },
    );
    assert.throws(() => parseNotifyConfig({ flags: { smtpHost: '127.0.0.1', smtpUser: 'u' } }), /2 notification settings problems[\s\S]*--notify-from[\s\S]*password/);
  });

  describe('with a test certificate for 127.0.0.1', () => {
    let pki: TestPki;
    let root: string;
    let leaf: { cert: string; key: string };
    before(async () => {
      pki = await TestPki.create();
      const now = Date.now();
      const ca = await pki.issue({ cn: 'padlock notify test root', kind: 'ca', notBefore: new Date(now - DAY), notAfter: new Date(now + 30 * DAY) });
      leaf = await pki.issue({ cn: '127.0.0.1', kind: 'leaf', issuer: ca, names: ['127.0.0.1'], notBefore: new Date(now - DAY), notAfter: new Date(now + 30 * DAY) });
      root = ca.cert;
    });
    after(async () => pki.cleanup());

    it('upgrades with STARTTLS and verifies the server against the given CA', async () => {
      const smtp = await startSmtp({ disabledCommands: [], key: leaf.key, cert: leaf.cert });
      try {
        const ch = createEmailChannel(emailSettings(smtp, { smtpTls: 'starttls', tlsCa: root }));
        const n = new Notifier({ channels: [ch], clock: fakeTime().clock, logger: captureLogs().logger });
        assert.deepEqual(await n.test(), [{ channel: 'email', target: ch.target, ok: true }]);
        await n.close();
        assert.equal(smtp.mails.length, 1);
        assert.equal(smtp.mails[0]!.secure, true, 'the message went over TLS');
      } finally {
        await smtp.close();
      }
    });

    it('speaks implicit TLS from the first byte', async () => {
      const smtp = await startSmtp({ secure: true, disabledCommands: [], key: leaf.key, cert: leaf.cert });
      try {
        const n = new Notifier({ channels: [createEmailChannel(emailSettings(smtp, { smtpTls: 'implicit', tlsCa: root }))], clock: fakeTime().clock, logger: captureLogs().logger });
        const [r] = await n.test();
        await n.close();
        assert.equal(r!.ok, true, r!.error);
        assert.equal(smtp.mails[0]!.secure, true);
      } finally {
        await smtp.close();
      }
    });

    it('refuses to send in clear when STARTTLS is required but not offered', async () => {
      const smtp = await startSmtp();
      try {
        const n = new Notifier({ channels: [createEmailChannel(emailSettings(smtp, { smtpTls: 'starttls', tlsCa: root }))], clock: fakeTime().clock, logger: captureLogs().logger });
        const [r] = await n.test();
        await n.close();
        assert.equal(r!.ok, false);
        assert.match(r!.error!, /STARTTLS/i);
        assert.equal(smtp.mails.length, 0);
      } finally {
        await smtp.close();
      }
    });

    it('with smtpTls none, ignores a STARTTLS offer and sends in clear', async () => {
      const smtp = await startSmtp({ disabledCommands: [], key: leaf.key, cert: leaf.cert });
      try {
        const n = new Notifier({ channels: [createEmailChannel(emailSettings(smtp, { smtpTls: 'none' }))], clock: fakeTime().clock, logger: captureLogs().logger });
        const [r] = await n.test();
        await n.close();
        assert.equal(r!.ok, true, r!.error);
        assert.equal(smtp.mails[0]!.secure, false);
      } finally {
        await smtp.close();
      }
    });

    it('rejects a server certificate it cannot verify', async () => {
      const smtp = await startSmtp({ disabledCommands: [], key: leaf.key, cert: leaf.cert });
      try {
        const n = new Notifier({ channels: [createEmailChannel(emailSettings(smtp, { smtpTls: 'starttls' }))], clock: fakeTime().clock, logger: captureLogs().logger });
        const [r] = await n.test();
        await n.close();
        assert.equal(r!.ok, false);
        assert.equal(smtp.mails.length, 0);
      } finally {
        await smtp.close();
      }
    });
  });
});

// ---------- webhook ----------

interface Hook {
  url: string;
  bodies: Array<Record<string, unknown>>;
  headers: IncomingMessage['headers'][];
  /** Status to answer for the n-th request (1-based); default 204. */
  status: (n: number) => number;
  close(): Promise<void>;
}

async function startHook(): Promise<Hook> {
  const hook: Hook = { url: '', bodies: [], headers: [], status: () => 204, close: async () => {} };
  let n = 0;
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      hook.bodies.push(JSON.parse(Buffer.concat(chunks).toString('utf8')) as Record<string, unknown>);
      hook.headers.push(req.headers);
      res.statusCode = hook.status(++n);
      res.end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  hook.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hooks/padlock?token=hunter2`;
  hook.close = () => new Promise<void>((resolve) => {
    server.closeAllConnections();
    server.close(() => resolve());
  });
  return hook;
}

describe('webhook notifications', () => {
  it('POSTs the documented JSON payload, retrying a 500', async () => {
    const hook = await startHook();
    try {
      hook.status = (n) => (n === 1 ? 500 : 204);
      const t = fakeTime();
      const logs = captureLogs();
      const notifier = new Notifier({ channels: [createWebhookChannel({ url: hook.url, timeoutMs: 5000 })], clock: t.clock, logger: logs.logger, retry: { attempts: 3, initialMs: 250, maxMs: 1000 }, timers: t.timers });
      notifier.notify(failedEvent(t));
      notifier.notify({ kind: 'expiring', name: 'shop.example.com', names, notAfter: t.at(7 * DAY), thresholdDays: 7 });
      notifier.notify({ kind: 'rate_limited', name: 'api.example.com', names: ['api.example.com'], detail: 'too many new orders', retryAfter: t.at(3 * HOUR) });
      await notifier.flush();
      await notifier.close();
      assert.deepEqual(t.sleeps, [250]);
      assert.equal(hook.bodies.length, 4, 'one retried POST plus three');
      // Lineages are handled concurrently, so the order of arrival is not fixed.
      const failedAt = hook.bodies.findLastIndex((b) => b['event'] === 'renewal_failed');
      const failed = hook.bodies[failedAt]!;
      assert.deepEqual(failed, {
        version: 1,
        event: 'renewal_failed',
        name: 'shop.example.com',
        names,
        email: 'owner@shop.example.com',
        reminder: false,
        sentAt: '2026-03-01T12:00:00.000Z',
        subject: '[padlock] Certificate renewal failed for shop.example.com (connection)',
        text: failed['text'],
        errorCode: 'ACME_CHALLENGE_FAILED',
        acmeType: 'connection',
        detail: '203.0.113.7: Timeout during connect (likely firewall problem) <script>x</script>',
        attempts: 3,
        firstFailureAt: '2026-03-01T09:00:00.000Z',
        nextAttemptAt: '2026-03-01T13:40:00.000Z',
        notAfter: '2026-03-21T12:00:00.000Z',
      });
      assert.match(String(failed['text']), /Likeliest fix:/);
      assert.equal(hook.headers[failedAt]!['content-type'], 'application/json');
      assert.equal(hook.headers[failedAt]!['x-padlock-event'], 'renewal_failed');
      const byEvent = new Map(hook.bodies.map((b) => [b['event'], b]));
      assert.equal(byEvent.get('expiring')!['thresholdDays'], 7);
      assert.equal(byEvent.get('expiring')!['notAfter'], '2026-03-08T12:00:00.000Z');
      assert.equal(byEvent.get('rate_limited')!['retryAfter'], '2026-03-01T15:00:00.000Z');
      assert.equal(byEvent.get('rate_limited')!['acmeType'], 'rateLimited');
      const warn = logs.records().find((r) => r['level'] === 'warn');
      assert.equal(warn?.['responseCode'], 500);
      assert.ok(!logs.lines.join('\n').includes('hunter2'), 'the URL token never reaches the logs');
    } finally {
      await hook.close();
    }
  });

  it('times out a receiver that never answers', async () => {
    const server = createServer(() => {});
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const ch: Channel = createWebhookChannel({ url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/`, timeoutMs: 200 });
      const n = new Notifier({ channels: [ch], clock: fakeTime().clock, logger: captureLogs().logger });
      const [r] = await n.test();
      await n.close();
      assert.equal(r!.ok, false);
      assert.match(r!.error!, /no answer within 200 ms/);
    } finally {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });
});

// ---------- padlock notify test ----------

/** Runs the real `padlock notify test` (bin/padlock), with no PADLOCK_* settings inherited from this process. */
function runNotifyCli(args: string[], env: Record<string, string | undefined> = {}) {
  const clean: Record<string, string | undefined> = {};
  for (const k of Object.keys(process.env)) if (k.startsWith('PADLOCK_')) clean[k] = undefined;
  return runCli(['notify', 'test', ...args], { env: { ...clean, ...env } });
}

describe('padlock notify test', () => {
  let smtp: Smtp;
  let hook: Hook;
  let dir: string;
  before(async () => {
    smtp = await startSmtp();
    hook = await startHook();
    dir = await mkdtemp(join(tmpdir(), 'padlock-notify-cli-'));
  });
  after(async () => {
    await smtp.close();
    await hook.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('sends through every channel, taking flags over env over the config file, and exits 0', async () => {
    const configFile = join(dir, 'padlock.yaml');
    // httpPort belongs to padlock run and is ignored here; smtpPort 1 is overridden by the env var.
    await writeFile(configFile, `httpPort: 8080\nsmtpHost: 127.0.0.1\nsmtpPort: 1\nsmtpTls: none\nnotifyFrom: file@example.net\nnotifyTo: [file@example.net]\n`);
    const res = await runNotifyCli(['--config', configFile, '--notify-to', 'flag@example.net,second@example.net', '--webhook-url', hook.url, '--json'], {
      PADLOCK_SMTP_PORT: String(smtp.port),
      PADLOCK_NOTIFY_FROM: 'env@example.net',
    });
    assert.equal(res.code, 0, res.stderr + res.stdout);
    const out = JSON.parse(res.stdout) as { ok: boolean; results: Array<{ channel: string; ok: boolean }> };
    assert.equal(out.ok, true);
    assert.deepEqual(out.results.map((r) => [r.channel, r.ok]), [['email', true], ['webhook', true]]);
    const mail = smtp.mails.at(-1)!;
    assert.equal(mail.from, 'env@example.net', 'env beats the file');
    assert.deepEqual(mail.to, ['flag@example.net', 'second@example.net'], 'the flag beats the file');
    assert.equal(decodeWords(parseMail(mail.raw).headers.get('subject')!), '[padlock] Test notification');
    assert.equal(hook.bodies.at(-1)!['event'], 'test');
    assert.equal(hook.bodies.at(-1)!['version'], 1);
  });

  it('prints each result and exits 1 when a channel fails', async () => {
    const dead = await startSmtp();
    const port = dead.port;
    await dead.close();
    const res = await runNotifyCli(['--smtp-host', '127.0.0.1', '--smtp-port', String(port), '--smtp-tls', 'none', '--notify-from', 'p@example.net', '--notify-to', 'ops@example.net', '--webhook-url', hook.url, '--timeout', '5']);
    assert.equal(res.code, 1, res.stderr);
    assert.match(res.stdout, /FAILED email +smtp 127\.0\.0\.1:\d+ \(none\) to ops@example\.net\n +.*ECONNREFUSED|FAILED email/);
    assert.match(res.stdout, /ok +webhook +POST http:\/\/127\.0\.0\.1:\d+\/…/);
    assert.match(res.stdout, /1 of 2 channel\(s\) failed\./);
    assert.ok(!res.stdout.includes('hunter2'), 'the webhook token is not printed');
  });

  it('says clearly when no channel is configured', async () => {
    const res = await runNotifyCli([]);
    assert.equal(res.code, 1);
    assert.match(res.stderr, /no notification channel is configured: set --smtp-host .* --webhook-url/);
  });

  it('reports bad settings all at once', async () => {
    const res = await runNotifyCli(['--smtp-host', '127.0.0.1', '--smtp-port', 'eighty', '--notify-to', 'nope'], { PADLOCK_SMTP_TLS: 'ssl' });
    assert.equal(res.code, 1);
    assert.match(res.stderr, /3 notification settings problems/);
    assert.match(res.stderr, /--smtp-port: smtpPort must be a port/);
    assert.match(res.stderr, /PADLOCK_SMTP_TLS: smtpTls must be one of none, starttls, implicit \(got "ssl"\)/);
    assert.match(res.stderr, /--notify-to: notifyTo must list email addresses/);
  });
});
