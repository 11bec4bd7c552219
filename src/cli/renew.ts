/**
 * `padlock renew`: renew every lineage that is due. Built for cron and
 * systemd timers: run it as often as you like. The decisions are the
 * engine's (certificates/engine.ts), the same as `padlock run`'s: a lineage
 * that is not due costs no request to the CA; one that failed recently, or
 * whose CA asked to wait, waits it out without asking the CA anything; one
 * another process is renewing is skipped.
 *
 * Exit status: 0 when every lineage is fine (renewed, not due, or being
 * renewed by another process); 1 when any lineage failed, is waiting out a
 * backoff or a CA's wait, has expired without being renewed, or its deploy
 * hook failed, so cron monitoring sees a problem on every run until it is
 * gone (as with certbot and lego).
 */
import type { CommandModule } from 'yargs';
import { systemClock } from '../clock.js';
import { PadlockError, errorMessage } from '../errors.js';
import type { RenewOutcome } from '../certificates/engine.js';
import { channelsFromConfig, notifyEnvLayer, parseNotifyConfig } from '../notify/config.js';
import { Notifier } from '../notify/notifier.js';
import { attachAlerts } from '../notify/alerts.js';
import { notifyOptions, notifyFlagLayer } from './notify.js';
import { readConfigFile } from '../config/file.js';
import { withStoreOptions, makeLogger, progressPrinter, reportError, output, dryRunServer, openEngine } from './common.js';

/** The alert flags (--smtp-host, --notify-to, --webhook-url...) and --config, shared with padlock notify test. */
function notifyFlags() {
  const { json: _j, timeout: _t, verbose: _v, ...rest } = notifyOptions();
  return rest;
}

interface RenewArgs {
  config?: string | undefined;
  'config-dir': string;
  json: boolean;
  'cert-name'?: string | undefined;
  'force-renewal': boolean;
  'ignore-rate-limit': boolean;
  'dry-run': boolean;
  'deploy-hook'?: string | undefined;
  'deploy-hook-timeout': number;
  'server-ca'?: string | undefined;
  concurrency: number;
  timeout: number;
  quiet: boolean;
  verbose: boolean;
}

export const renewCommand: CommandModule<object, RenewArgs> = {
  command: 'renew',
  describe: 'Renew every certificate that is due (safe to run from cron as often as you like)',
  builder: (y) =>
    withStoreOptions(y)
      .option('cert-name', { type: 'string', describe: 'Renew only this lineage' })
      .option('force-renewal', { type: 'boolean', default: false, describe: "Renew even if not due (skips padlock's own backoff; a CA's wait or rate limit is still respected)" })
      .option('ignore-rate-limit', { type: 'boolean', default: false, describe: "Also ignore a wait the CA asked for (429/503 Retry-After) and padlock's rate-limit ledger. The CA will likely refuse again." })
      .option('dry-run', { type: 'boolean', default: false, describe: 'Renew against the CA but store nothing and run no hook' })
      .option('deploy-hook', { type: 'string', describe: 'Override the stored deploy hook for this run' })
      .option('deploy-hook-timeout', { type: 'number', default: 300, describe: 'Seconds a deploy hook may run before it and its whole process group are killed' })
      .option('server-ca', { type: 'string', describe: "PEM file trusted for the ACME server's HTTPS (default: the one stored with the lineage, or $PADLOCK_SERVER_CA)" })
      .option('concurrency', { type: 'number', default: 4, describe: 'Orders in flight at once' })
      .option('timeout', { type: 'number', default: 30, describe: 'Seconds to wait for any one request to the CA' })
      .option('quiet', { alias: 'q', type: 'boolean', default: false, describe: 'Print errors only' })
      .option('verbose', { alias: 'v', type: 'boolean', default: false, describe: 'Also print JSON log lines on stderr' })
      .options(notifyFlags()) as never,
  handler: async (args) => {
    try {
      await renew(args);
    } catch (err) {
      reportError(err, args.json);
    }
  },
};

async function renew(args: RenewArgs): Promise<void> {
  const clock = systemClock;
  const logger = makeLogger(args);
  const { engine, store, events, close } = await openEngine({
    store: args, logger, timeoutMs: args.timeout * 1000, serverCa: args['server-ca'], hookTimeoutMs: args['deploy-hook-timeout'] * 1000,
  });
  const name = args['cert-name'];
  const names = name ? [name] : await store.listLineages();
  if (name && !(await store.readLineage(name))) {
    await close();
    throw new PadlockError('STORE_NOT_FOUND', `no certificate named ${name} in ${store.location}; see padlock certificates`);
  }
  const say = progressPrinter(args);
  // Alerts (email, webhook) when configured: failures in their alert window, recoveries, expiry warnings.
  const channels = await channelsFromConfig(parseNotifyConfig({
    ...(args.config ? { file: await readConfigFile(args.config), fileName: args.config } : {}),
    env: notifyEnvLayer(process.env),
    flags: notifyFlagLayer(args as unknown as Record<string, unknown>),
  }, process.env), process.env);
  // A cron run must end: few, short retries.
  const notifier = channels.length ? new Notifier({ channels, store, clock, logger, retry: { attempts: 3, initialMs: 2_000, maxMs: 5_000 } }) : undefined;
  if (notifier) attachAlerts({ notifier, store, clock, logger }, events);

  let outcomes: RenewOutcome[];
  try {
    outcomes = await engine.renew(names, {
      forced: args['force-renewal'],
      ignoreRateLimit: args['ignore-rate-limit'],
      dryRun: args['dry-run'],
      concurrency: args.concurrency,
      adjust: (spec) => ({
        ...spec,
        ...(args['deploy-hook'] ? { deployHook: args['deploy-hook'] } : {}),
        ...(args['dry-run'] ? { server: dryRunServer(spec.server) } : {}),
      }),
      onProgress: (lineage, e) => say({ ...e, message: `${lineage}: ${e.message}` }),
    });
  } finally {
    await close();
    await events.drain();
    await notifier?.flush();
    await notifier?.close();
  }

  const failing = outcomes.filter(isProblem);
  output(args, {
    ok: failing.length === 0,
    results: outcomes.map((o) => (o.action === 'failed' ? { ...o, error: o.error.toJSON() } : o.action === 'renewed' && o.hookError ? { ...o, hookError: errorMessage(o.hookError) } : o)),
  }, outcomes.length ? outcomes.map(describeOutcome).join('\n') : `No certificates in ${store.location}.`);
  if (failing.length) process.exitCode = 1;
}

/** Whether an outcome makes the run exit 1 (see the module comment). */
function isProblem(o: RenewOutcome): boolean {
  return o.action === 'failed' || o.action === 'backoff' || (o.action === 'busy' && o.expired === true) || (o.action === 'renewed' && o.hookError !== undefined);
}

function describeOutcome(o: RenewOutcome): string {
  switch (o.action) {
    case 'renewed': return `${o.name}: renewed (${o.reason}), valid until ${o.notAfter}${o.explanationURL ? `; the CA explains: ${o.explanationURL}` : ''}${o.hookError ? `; deploy hook failed: ${errorMessage(o.hookError)}` : ''}`;
    case 'not-due': return `${o.name}: not due until ${o.dueAt}${o.explanationURL ? ` (the CA explains: ${o.explanationURL})` : ''}`;
    case 'backoff': return `${o.name}: ${o.expired ? 'EXPIRED, and ' : ''}waiting until ${o.until}: ${o.reason}`;
    case 'busy': return `${o.name}: ${o.expired ? 'EXPIRED; ' : ''}skipped, another padlock process is working on it`;
    case 'skipped': return `${o.name}: skipped: ${o.why}`;
    case 'failed': return `${o.name}: ${o.expired ? 'EXPIRED and ' : ''}FAILED: ${o.error.message} [${o.error.code}]`;
  }
}
