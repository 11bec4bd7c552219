/**
 * Notification settings: one zod object, the single source of truth for
 * their types, defaults, validation and help texts. It is meant to be merged
 * into the run config schema (`runConfigSchema.extend(notifyConfigSchema.shape)`);
 * `padlock notify test` uses it alone. The flag is the kebab-case key, the env
 * var `PADLOCK_` + SNAKE_CASE key (`--smtp-host`, `PADLOCK_SMTP_HOST`); the
 * password itself only comes from a file or `PADLOCK_SMTP_PASSWORD`, never a
 * flag (flags show up in `ps`).
 */
import { z } from 'zod';
import { PadlockError } from '../errors.js';
import type { Channel } from './events.js';
import { createEmailChannel, readSmtpPassword } from './email.js';
import { createWebhookChannel } from './webhook.js';
import { shownValue } from '../config/shown.js';

export const notifyConfigSchema = z.object({
  smtpHost: z.string().min(1, 'smtpHost must not be empty').optional().describe('SMTP server for alert emails (enables email alerts)'),
  smtpPort: z.number({ error: 'smtpPort must be a port (1-65535)' }).int().min(1, 'smtpPort must be a port (1-65535)').max(65535, 'smtpPort must be a port (1-65535)').default(587).describe('SMTP server port (587 submission, 465 implicit TLS, 25)'),
  smtpTls: z.enum(['none', 'starttls', 'implicit'], { error: 'smtpTls must be one of none, starttls, implicit' }).default('starttls')
    .describe('SMTP TLS: none (plain), starttls (upgrade, required), implicit (TLS from the start, port 465)'),
  smtpUser: z.string().min(1, 'smtpUser must not be empty').optional().describe('SMTP user name for AUTH'),
  smtpPasswordFile: z.string().min(1, 'smtpPasswordFile must not be empty').optional().describe('File holding the SMTP password (or set $PADLOCK_SMTP_PASSWORD)'),
  notifyFrom: z.email({ error: 'notifyFrom must be an email address' }).optional().describe('Sender address of alert emails'),
  notifyTo: z.array(z.email({ error: 'notifyTo must list email addresses' })).default([])
    .describe('Recipients of every alert (comma-separated); the label padlock.email adds one per certificate'),
  webhookUrl: z.url({ protocol: /^https?$/, error: 'webhookUrl must be an http(s) URL' }).optional().describe('URL that receives a JSON POST for every alert'),
});

export type NotifyConfig = z.infer<typeof notifyConfigSchema>;
export type NotifyConfigKey = keyof NotifyConfig;
export const NOTIFY_KEYS = Object.keys(notifyConfigSchema.shape) as NotifyConfigKey[];

const envName = (key: string) => 'PADLOCK_' + key.replace(/[A-Z]/g, (c) => '_' + c).toUpperCase();
const flagName = (key: string) => key.replace(/[A-Z]/g, (c) => '-' + c.toLowerCase());

/** Converts a flag or env string to the key's type; leaves it as is for the schema to reject. */
function fromString(key: NotifyConfigKey, raw: string): unknown {
  if (key === 'smtpPort') return raw.trim() !== '' && Number.isFinite(Number(raw)) ? Number(raw) : raw;
  if (key === 'notifyTo') return raw.split(',').map((s) => s.trim()).filter(Boolean);
  return raw;
}

/** The `PADLOCK_*` variables of the notify keys (`PADLOCK_NOTIFY_TO` is comma-separated). */
export function notifyEnvLayer(env: NodeJS.ProcessEnv): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const key of NOTIFY_KEYS) {
    const raw = env[envName(key)];
    if (raw !== undefined && raw !== '') out[key] = fromString(key, raw);
  }
  return out;
}

/**
 * Rules across keys, which a merged schema cannot carry: one message per
 * problem, naming the flag.
 */
export function notifyConfigProblems(config: NotifyConfig, env: NodeJS.ProcessEnv = {}): string[] {
  const problems: string[] = [];
  const email = config.smtpHost !== undefined;
  if (email && !config.notifyFrom) problems.push('--smtp-host needs --notify-from (the sender address)');
  if (!email) {
    for (const key of ['notifyFrom', 'smtpUser', 'smtpPasswordFile'] as const) {
      if (config[key] !== undefined) problems.push(`--${flagName(key)} is set but --smtp-host is not; set --smtp-host to send email`);
    }
    if (config.notifyTo.length) problems.push('--notify-to is set but --smtp-host is not; set --smtp-host to send email');
  }
  const hasPassword = config.smtpPasswordFile !== undefined || !!env['PADLOCK_SMTP_PASSWORD'];
  if (email && config.smtpUser && !hasPassword) problems.push('--smtp-user needs a password: --smtp-password-file or $PADLOCK_SMTP_PASSWORD');
  if (email && !config.smtpUser && config.smtpPasswordFile) problems.push('--smtp-password-file is set but --smtp-user is not');
  return problems;
}

/**
 * Merges layers (flag > env > file; `undefined` values do not count), keeps
 * only the notify keys of the file (the file may be padlock run's, with
 * other keys), validates, and reports every problem at once with where the
 * value came from, as one CONFIG_INVALID error.
 */
export function parseNotifyConfig(layers: { file?: Record<string, unknown>; fileName?: string; env?: Record<string, unknown>; flags?: Record<string, unknown> }, env: NodeJS.ProcessEnv = {}): NotifyConfig {
  const origin = new Map<string, string>();
  const merged: Record<string, unknown> = {};
  const apply = (layer: Record<string, unknown> | undefined, from: string) => {
    for (const key of NOTIFY_KEYS) {
      const v = layer?.[key];
      if (v === undefined) continue;
      merged[key] = v;
      origin.set(key, from);
    }
  };
  apply(layers.file, 'file');
  apply(layers.env, 'env');
  apply(layers.flags, 'flag');
  const result = notifyConfigSchema.safeParse(merged);
  const problems: string[] = [];
  if (!result.success) {
    for (const issue of result.error.issues) {
      const key = String(issue.path[0] ?? '');
      const from = origin.get(key);
      const where = from === 'env' ? envName(key) : from === 'flag' ? `--${flagName(key)}` : from === 'file' ? `config file${layers.fileName ? ` ${layers.fileName}` : ''}: ${issue.path.join('.')}` : issue.path.join('.');
      const value = key in merged ? shownValue(key, issue.path.length > 1 ? pick(merged[key], issue.path.slice(1)) : merged[key]) : '';
      problems.push(`${where || 'config'}: ${issue.message}${value}`);
    }
  } else {
    problems.push(...notifyConfigProblems(result.data, env));
  }
  if (problems.length) {
    throw new PadlockError('CONFIG_INVALID', problems.length === 1 ? problems[0]! : `${problems.length} notification settings problems:\n  - ${problems.join('\n  - ')}`, {
      details: { problems },
    });
  }
  return Object.freeze(result.data!) as NotifyConfig;
}

function pick(value: unknown, path: PropertyKey[]): unknown {
  let cur = value;
  for (const p of path) cur = (cur as Record<PropertyKey, unknown> | undefined)?.[p];
  return cur;
}

export interface ChannelOptions {
  /** Extra PEM trust anchors for the SMTP server's certificate. */
  smtpTlsCa?: string;
  /** Per-request timeout for SMTP and the webhook, ms. */
  timeoutMs?: number;
}

/**
 * The channels a validated config describes: email when `smtpHost` is set,
 * the webhook when `webhookUrl` is. Reads the SMTP password once, now
 * (CONFIG_INVALID naming the file when it cannot). Cross-key problems
 * (see {@link notifyConfigProblems}) are CONFIG_INVALID, all at once.
 * An empty array means notifications are off.
 */
export async function channelsFromConfig(config: NotifyConfig, env: NodeJS.ProcessEnv, options: ChannelOptions = {}): Promise<Channel[]> {
  const problems = notifyConfigProblems(config, env);
  if (problems.length) {
    throw new PadlockError('CONFIG_INVALID', problems.length === 1 ? problems[0]! : `${problems.length} notification settings problems:\n  - ${problems.join('\n  - ')}`, { details: { problems } });
  }
  const channels: Channel[] = [];
  if (config.smtpHost) {
    const password = config.smtpUser ? await readSmtpPassword(config.smtpPasswordFile, env) : undefined;
    channels.push(createEmailChannel({
      smtpHost: config.smtpHost,
      smtpPort: config.smtpPort,
      smtpTls: config.smtpTls,
      ...(config.smtpUser ? { smtpUser: config.smtpUser } : {}),
      ...(password !== undefined ? { smtpPassword: password } : {}),
      notifyFrom: config.notifyFrom!,
      notifyTo: [...config.notifyTo],
      ...(options.smtpTlsCa ? { tlsCa: options.smtpTlsCa } : {}),
      ...(options.timeoutMs ? { timeoutMs: options.timeoutMs } : {}),
    }));
  }
  if (config.webhookUrl) {
    channels.push(createWebhookChannel({ url: config.webhookUrl, ...(options.timeoutMs ? { timeoutMs: options.timeoutMs } : {}) }));
  }
  return channels;
}
