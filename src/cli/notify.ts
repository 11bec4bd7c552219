/**
 * `padlock notify test`: sends a test message through every configured
 * notification channel (email, webhook) and prints each result.
 * Settings come from flags > PADLOCK_* env vars > the config file (the same
 * keys as `padlock run`'s), validated at once by the notify schema.
 * Exit 0 when every channel accepted the message, 1 when any failed, when
 * the settings are invalid, or when no channel is configured.
 */
import type { Argv, CommandModule, Options } from 'yargs';
import { systemClock } from '../clock.js';
import { PadlockError, errorMessage } from '../errors.js';
import { createLogger, silentLogger } from '../log.js';
import { NOTIFY_KEYS, channelsFromConfig, notifyConfigSchema, notifyEnvLayer, parseNotifyConfig, type NotifyConfigKey } from '../notify/config.js';
import { Notifier } from '../notify/notifier.js';
import { reportError } from './common.js';
import { envName, flagName } from '../config/schema.js';
import { readConfigFile } from '../config/file.js';


/** The notify flags (one per notifyConfigSchema key), plus --config, --json, --timeout, --verbose. */
export function notifyOptions(): Record<string, Options> {
  const out: Record<string, Options> = {
    config: { type: 'string', describe: 'YAML or JSON config file; its notify keys are used (also $PADLOCK_CONFIG)' },
    json: { type: 'boolean', default: false, describe: 'Print one JSON document on stdout instead of text' },
    timeout: { type: 'number', default: 15, describe: 'Seconds to wait for each channel' },
    verbose: { alias: 'v', type: 'boolean', default: false, describe: 'Also print JSON log lines on stderr' },
  };
  for (const key of NOTIFY_KEYS) {
    const field = notifyConfigSchema.shape[key];
    const def = (field as unknown as { def?: { defaultValue?: unknown } }).def?.defaultValue;
    out[flagName(key)] = {
      // Strings (lists as repeatable strings), so "eighty" reaches the schema and is reported with the rest.
      type: 'string',
      ...(key === 'notifyTo' ? { array: true } : {}),
      describe: `${field.description ?? ''} [env ${envName(key)}]`,
      ...(def !== undefined && !(Array.isArray(def) && def.length === 0) ? { defaultDescription: JSON.stringify(def) } : {}),
    };
  }
  return out;
}

/** The flag layer: strings converted like env values (`--notify-to a,b --notify-to c` is three addresses). */
/** The notify keys given as flags, converted for the schema. */
export function notifyFlagLayer(argv: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const key of NOTIFY_KEYS as NotifyConfigKey[]) {
    const v = argv[flagName(key)];
    if (v === undefined) continue;
    if (key === 'notifyTo') out[key] = (Array.isArray(v) ? v : [v]).flatMap((s) => String(s).split(',')).map((s) => s.trim()).filter(Boolean);
    else if (key === 'smtpPort') out[key] = typeof v === 'string' && v.trim() !== '' && Number.isFinite(Number(v)) ? Number(v) : v;
    else out[key] = v;
  }
  return out;
}

const NO_CHANNEL = 'no notification channel is configured: set --smtp-host with --notify-from and --notify-to for email, and/or --webhook-url (or their PADLOCK_* env vars or config-file keys)';

async function notifyTest(argv: Record<string, unknown>): Promise<void> {
  const json = argv['json'] === true;
  const env = process.env;
  const file = (argv['config'] as string | undefined) ?? (env['PADLOCK_CONFIG'] || undefined);
  const config = parseNotifyConfig({ ...(file ? { file: await readConfigFile(file), fileName: file } : {}), env: notifyEnvLayer(env), flags: notifyFlagLayer(argv) }, env);
  const timeoutMs = Math.max(1, Number(argv['timeout'] ?? 15)) * 1000;
  const channels = await channelsFromConfig(config, env, { timeoutMs });
  if (channels.length === 0) throw new PadlockError('CONFIG_INVALID', NO_CHANNEL);
  const logger = argv['verbose'] ? createLogger({ level: 'debug' }) : silentLogger;
  const notifier = new Notifier({ channels, clock: systemClock, logger, retry: { attempts: 1, initialMs: 0, maxMs: 0 } });
  try {
    const results = await notifier.test();
    const ok = results.every((r) => r.ok);
    if (json) process.stdout.write(JSON.stringify({ ok, results }, null, 2) + '\n');
    else {
      for (const r of results) process.stdout.write(`${r.ok ? 'ok    ' : 'FAILED'} ${r.channel.padEnd(8)} ${r.target}${r.ok ? '' : `\n       ${r.error ?? 'unknown error'}`}\n`);
      process.stdout.write(ok ? `Sent a test message through ${results.length} channel(s).\n` : `${results.filter((r) => !r.ok).length} of ${results.length} channel(s) failed.\n`);
    }
    process.exitCode = ok ? 0 : 1;
  } finally {
    await notifier.close();
  }
}

const notifyTestCommand: CommandModule<object, Record<string, unknown>> = {
  command: 'test',
  describe: 'Send a test message through every configured channel and report each result',
  builder: (y: Argv<object>) => y.options(notifyOptions()).strict() as never,
  handler: async (argv) => {
    try {
      await notifyTest(argv);
    } catch (err) {
      reportError(err, argv['json'] === true);
    }
  },
};

/** `padlock notify <subcommand>`; today only `test`. */
export const notifyCommand: CommandModule<object, object> = {
  command: 'notify',
  describe: 'Email and webhook notifications (padlock notify test)',
  builder: (y: Argv<object>) => y.command(notifyTestCommand).demandCommand(1, 'Name a notify subcommand: test') as never,
  handler: () => {},
};
