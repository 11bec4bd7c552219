/**
 * The email channel: one nodemailer SMTP transport built from settings.
 *
 * TLS modes: `none` never upgrades (`ignoreTLS`), `starttls` requires the
 * STARTTLS upgrade and fails without it (`requireTLS`), `implicit` speaks TLS
 * from the first byte (`secure`, usually port 465). Server certificates are
 * verified against the system store plus `tlsCa` (Node's
 * NODE_EXTRA_CA_CERTS works too). Connection, greeting and socket timeouts
 * are always set, so a dead mail server never holds a delivery forever.
 *
 * The password is read once, when the channel is built, from
 * `smtpPasswordFile` or the environment's `PADLOCK_SMTP_PASSWORD`; it is
 * handed to nodemailer and nowhere else: nodemailer's own logger stays off,
 * and error messages are scrubbed of it before they leave this module.
 */
import { readFile } from 'node:fs/promises';
import type { SMTPTransportOptions } from 'nodemailer';
import type Mail from 'nodemailer/lib/mailer/index.js';
import { PadlockError, errorMessage } from '../errors.js';
import { DeliveryError, type Channel, type Delivery } from './events.js';

export type SmtpTlsMode = 'none' | 'starttls' | 'implicit';

export interface EmailSettings {
  smtpHost: string;
  smtpPort: number;
  smtpTls: SmtpTlsMode;
  smtpUser?: string;
  /** The password itself (see {@link readSmtpPassword}). Never logged. */
  smtpPassword?: string;
  notifyFrom: string;
  /** Global recipients; each event's own `email` is added. */
  notifyTo: string[];
  /** Extra PEM trust anchors for the server's certificate (private relays, tests). */
  tlsCa?: string;
  /** Connection and greeting timeout, ms (default 15 s); the socket inactivity timeout is twice this. */
  timeoutMs?: number;
}

/**
 * The SMTP password: the first line of `file` when given (a missing or
 * unreadable file is CONFIG_INVALID naming the file), else
 * `env.PADLOCK_SMTP_PASSWORD`, else undefined.
 */
export async function readSmtpPassword(file: string | undefined, env: NodeJS.ProcessEnv): Promise<string | undefined> {
  if (file) {
    let text: string;
    try {
      text = await readFile(file, 'utf8');
    } catch (err) {
      throw new PadlockError('CONFIG_INVALID', `--smtp-password-file ${file}: cannot read it (${(err as NodeJS.ErrnoException).code ?? errorMessage(err)})`, {
        details: { file },
      });
    }
    const password = text.replace(/\r?\n[\s\S]*$/, '');
    if (!password) throw new PadlockError('CONFIG_INVALID', `--smtp-password-file ${file}: the file is empty`, { details: { file } });
    return password;
  }
  const fromEnv = env['PADLOCK_SMTP_PASSWORD'];
  return fromEnv ? fromEnv : undefined;
}

/** The transport options nodemailer gets for `settings` (exported for tests of the TLS mapping). */
export function transportOptions(settings: EmailSettings): SMTPTransportOptions {
  const timeout = settings.timeoutMs ?? 15_000;
  return {
    host: settings.smtpHost,
    port: settings.smtpPort,
    secure: settings.smtpTls === 'implicit',
    ignoreTLS: settings.smtpTls === 'none',
    requireTLS: settings.smtpTls === 'starttls',
    connectionTimeout: timeout,
    greetingTimeout: timeout,
    socketTimeout: timeout * 2,
    dnsTimeout: timeout,
    logger: false,
    debug: false,
    ...(settings.smtpUser ? { auth: { user: settings.smtpUser, pass: settings.smtpPassword ?? '' } } : {}),
    ...(settings.tlsCa ? { tls: { ca: settings.tlsCa } } : {}),
  };
}

/** The recipients of one delivery: `notifyTo` plus the event's own address, each once (case-insensitive). */
export function recipientsFor(notifyTo: readonly string[], eventEmail: string | undefined): string[] {
  const out: string[] = [];
  for (const a of [...notifyTo, ...(eventEmail ? [eventEmail] : [])]) {
    if (!out.some((b) => b.toLowerCase() === a.toLowerCase())) out.push(a);
  }
  return out;
}

/** Builds the email channel. Nothing connects, and nodemailer is not even loaded, until the first send. */
export function createEmailChannel(settings: EmailSettings): Channel {
  let transport: Promise<Mail> | undefined;
  const transportNow = (): Promise<Mail> => (transport ??= import('nodemailer').then(({ default: nodemailer }) => nodemailer.createTransport(transportOptions(settings))));
  const secrets = secretForms(settings.smtpUser, settings.smtpPassword);
  let closed = false;
  return {
    name: 'email',
    target: `smtp ${settings.smtpHost}:${settings.smtpPort} (${settings.smtpTls}) to ${settings.notifyTo.join(', ') || 'per-certificate addresses only'}`,
    async send(delivery: Delivery): Promise<void> {
      if (closed) throw new DeliveryError('email', 'the email channel is closed');
      const to = recipientsFor(settings.notifyTo, delivery.event.email);
      if (to.length === 0) throw new DeliveryError('email', 'no recipient: set --notify-to (or the label padlock.email on the site)', { code: 'ENORECIPIENT' });
      try {
        await (await transportNow()).sendMail({
          from: settings.notifyFrom,
          to,
          subject: delivery.message.subject,
          text: delivery.message.text,
          html: delivery.message.html,
          headers: { 'X-Padlock-Event': delivery.event.kind, 'Auto-Submitted': 'auto-generated' },
        });
      } catch (err) {
        const e = err as { code?: unknown; responseCode?: unknown; response?: unknown };
        const responseCode = typeof e.responseCode === 'number' ? e.responseCode : undefined;
        const code = typeof e.code === 'string' ? e.code : undefined;
        throw new DeliveryError('email', scrub(`sending to ${to.join(', ')} via ${settings.smtpHost}:${settings.smtpPort} failed: ${errorMessage(err)}`, secrets), {
          ...(code ? { code } : {}),
          ...(responseCode !== undefined ? { responseCode } : {}),
        });
      }
    },
    close(): void {
      closed = true;
      void transport?.then((t) => t.close(), () => undefined);
    },
  };
}

/** The password as it could appear on the wire (plain, and in AUTH PLAIN / LOGIN base64). */
function secretForms(user: string | undefined, password: string | undefined): string[] {
  if (!password) return [];
  return [
    password,
    Buffer.from(password).toString('base64'),
    Buffer.from(`\u0000${user ?? ''}\u0000${password}`).toString('base64'),
  ];
}

function scrub(text: string, secrets: string[]): string {
  let out = text;
  for (const s of secrets) if (s) out = out.split(s).join('[redacted]');
  return out;
}
