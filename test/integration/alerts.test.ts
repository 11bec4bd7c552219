/**
 * Alerts from `padlock renew` (the cron path) through a real SMTP server:
 * a renewal that keeps failing mails the reason once it is in its alert
 * window, and a later success mails the recovery.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { SMTPServer } from 'smtp-server';
import { startPebble, type Pebble } from '../support/pebble.js';
import { runCli } from '../support/cli.js';
import { pebbleFlags, tempConfigDir, uniqueName } from '../support/padlock.js';

interface Mail { to: string[]; raw: string }

let pebble: Pebble;
let cfg: { dir: string; cleanup: () => Promise<void> };
let smtp: SMTPServer;
let smtpPort: number;
const mails: Mail[] = [];

before(async () => {
  pebble = await startPebble({ validitySeconds: 8 });
  cfg = await tempConfigDir();
  smtp = new SMTPServer({
    authOptional: true,
    disabledCommands: ['STARTTLS'],
    onData(stream, session, done) {
      let raw = '';
      stream.setEncoding('utf8').on('data', (d: string) => (raw += d)).on('end', () => {
        mails.push({ to: session.envelope.rcptTo.map((r) => r.address), raw });
        done();
      });
    },
  });
  await new Promise<void>((r) => smtp.listen(0, '127.0.0.1', r));
  smtpPort = (smtp.server.address() as AddressInfo).port;
});
after(async () => {
  await new Promise((r) => smtp?.close(() => r(undefined)));
  await pebble?.stop();
  await cfg?.cleanup();
});

const notifyFlags = () => ['--smtp-host', '127.0.0.1', '--smtp-port', String(smtpPort), '--smtp-tls', 'none', '--notify-from', 'padlock@example.net', '--notify-to', 'ops@example.net'];
/** Quoted-printable and folded headers make raw mail hard to grep; unfold soft line breaks. */
const text = (m: Mail) => m.raw.replace(/=\r?\n/g, '').replace(/=3D/g, '=').replace(/\r?\n[ \t]+/g, ' ');
/** Mails whose subject says `what` (an 8-second certificate also gets legitimate expiry warnings meanwhile). */
const mailsAbout = (what: RegExp) => mails.filter((m) => what.test((/^Subject: (.*)$/m.exec(text(m)) ?? [])[1] ?? ''));
const FAILED = /renewal failed/;
const RECOVERED = /is valid again/;

describe('alerts from padlock renew', () => {
  it('mails the reason and the fix after repeated failures in the renewal window (here: the challenge cannot be served), then mails the recovery', async () => {
    const name = uniqueName('alert');
    const r = await runCli(['issue', '-d', name, '--email', 'owner@example.net', ...pebbleFlags(pebble).filter((f, i, a) => f !== '--email' && a[i - 1] !== '--email'), '--config-dir', cfg.dir]);
    assert.equal(r.code, 0, r.stderr);
    await new Promise((res) => setTimeout(res, 4500)); // into the renewal window of an 8-second certificate

    // Something else holds the challenge port: the challenge cannot be served.
    const impostor = http.createServer((_q, s) => s.end('not the key authorization'));
    await new Promise<void>((res) => impostor.listen(pebble.httpPort, '127.0.0.1', res));
    try {
      for (let i = 1; i <= 3; i++) {
        const attempt = await runCli(['renew', '--force-renewal', '--config-dir', cfg.dir, '--cert-name', name, ...notifyFlags()]);
        assert.equal(attempt.code, 1, attempt.stdout + attempt.stderr);
        assert.equal(mailsAbout(FAILED).length, i < 3 ? 0 : 1, `failure mails after attempt ${i}`);
      }
    } finally {
      await new Promise((res) => impostor.close(res));
    }
    const failed = mailsAbout(FAILED)[0]!;
    const alert = text(failed);
    assert.deepEqual(failed.to.sort(), ['ops@example.net', 'owner@example.net'], 'global and per-certificate recipients');
    assert.match(alert, new RegExp(`Subject: .*${name.replace(/\./g, '\\.')}`));
    assert.match(alert, /CHALLENGE_PORT_IN_USE/);
    assert.match(alert, /already in use, so the HTTP-01 challenge cannot be served/);

    // Port 80 is fine again: the next renewal succeeds and the recovery is mailed.
    const ok = await runCli(['renew', '--force-renewal', '--config-dir', cfg.dir, '--cert-name', name, ...notifyFlags()]);
    assert.equal(ok.code, 0, ok.stdout + ok.stderr);
    assert.equal(mailsAbout(RECOVERED).length, 1, 'one recovery mail');
    assert.equal(mailsAbout(FAILED).length, 1, 'the failure was mailed once, not per attempt');
  });
});
