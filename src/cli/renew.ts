/**
 * `padlock renew`: renew every lineage that is due. Built for cron and
 * systemd timers: run it as often as you like. A lineage that is not due
 * costs no request to the CA; one that failed recently waits out its
 * backoff; one another process is renewing is skipped.
 */
import type { CommandModule } from 'yargs';
import { obtainLineage, failureOf, recordFailure } from '../certificates/obtain.js';
import { runDeployHook } from '../certificates/hooks.js';
import { decideWithAri, blockedUntil, type RenewalReason } from '../certificates/policy.js';
import type { CertStore, LineageMeta } from '../store/store.js';
import { loadTrustAnchors } from '../tls/roots.js';
import { describeCertificate } from '../tls/inspect.js';
import type { ChallengeResponder } from '../acme/http01.js';
import { systemClock } from '../clock.js';
import { PadlockError, errorMessage } from '../errors.js';
import { AriSources, checkAri } from '../certificates/ari-check.js';
import { channelsFromConfig, notifyEnvLayer, parseNotifyConfig } from '../notify/config.js';
import { Notifier } from '../notify/notifier.js';
import { alertExpiry, alertFailure, alertSuccess, type AlertContext } from '../notify/alerts.js';
import { notifyOptions, notifyFlagLayer } from './notify.js';
import { readConfigFile } from '../config/file.js';
import { withStoreOptions, openStore, makeLogger, progressPrinter, reportError, responderFor, readPemOption, output, dryRunStore, dryRunServer } from './common.js';

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
  'server-ca'?: string | undefined;
  concurrency: number;
  timeout: number;
  quiet: boolean;
  verbose: boolean;
}

type Outcome =
  | { name: string; action: 'renewed'; reason: RenewalReason; notAfter: string; version: number; hookError?: unknown; explanationURL?: string; recoveredFrom?: number }
  | { name: string; action: 'not-due'; dueAt: string; explanationURL?: string }
  | { name: string; action: 'backoff'; until: string; lastError?: unknown }
  | { name: string; action: 'busy' }
  | { name: string; action: 'local' }
  | { name: string; action: 'failed'; error: PadlockError };

export const renewCommand: CommandModule<object, RenewArgs> = {
  command: 'renew',
  describe: 'Renew every certificate that is due (safe to run from cron as often as you like)',
  builder: (y) =>
    withStoreOptions(y)
      .option('cert-name', { type: 'string', describe: 'Renew only this lineage' })
      .option('force-renewal', { type: 'boolean', default: false, describe: 'Renew even if not due (a CA rate limit is still respected)' })
      .option('ignore-rate-limit', { type: 'boolean', default: false, describe: 'With --force-renewal: also ignore a CA rate-limit wait. The CA will likely refuse again.' })
      .option('dry-run', { type: 'boolean', default: false, describe: 'Renew against the CA but store nothing and run no hook' })
      .option('deploy-hook', { type: 'string', describe: 'Override the stored deploy hook for this run' })
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
  const disk = await openStore(args['config-dir']);
  const names = args['cert-name'] ? [args['cert-name']] : await disk.listLineages();
  if (args['cert-name'] && !(await disk.readLineage(args['cert-name']))) {
    throw new PadlockError('STORE_NOT_FOUND', `no certificate named ${args['cert-name']} in ${disk.location}; see padlock certificates`);
  }
  const say = progressPrinter(args);
  // Alerts (email, webhook) when configured: failures in their alert window, recoveries, expiry warnings.
  const channels = await channelsFromConfig(parseNotifyConfig({
    ...(args.config ? { file: await readConfigFile(args.config), fileName: args.config } : {}),
    env: notifyEnvLayer(process.env),
    flags: notifyFlagLayer(args as unknown as Record<string, unknown>),
  }, process.env), process.env);
  const notifier = channels.length
    // A cron run must end: few, short retries.
    ? new Notifier({ channels, store: disk, clock, logger, retry: { attempts: 3, initialMs: 2_000, maxMs: 5_000 } })
    : undefined;
  const alerts: AlertContext | undefined = notifier ? { notifier, store: disk, clock, logger } : undefined;
  const responders = new Map<string, ChallengeResponder>();
  const outcomes: Outcome[] = [];
  // One anonymous client per CA for renewal information (RFC 9773); the first lineage's --server-ca for a CA serves it.
  const ariSources = new AriSources({
    serverCaFor: async (server) => {
      const lineageCa = (await Promise.all(names.map((n) => disk.readMeta(n).catch(() => null)))).find((m) => m?.server === server)?.serverCa;
      return readPemOption('--server-ca', args['server-ca'] ?? lineageCa ?? (process.env['PADLOCK_SERVER_CA'] || undefined));
    },
    timeoutMs: args.timeout * 1000,
    logger,
  });

  // One unreadable lineage fails on its own; the others still renew.
  const renewOne = (name: string): Promise<Outcome> => renewLineage(name).catch((err: unknown) => ({
    name,
    action: 'failed' as const,
    error: err instanceof PadlockError ? err : new PadlockError('STORE_CORRUPT', `${name}: ${errorMessage(err)}`, { cause: err }),
  }));
  const renewLineage = async (name: string): Promise<Outcome> => {
    const lineage = await disk.readLineage(name);
    if (!lineage) return { name, action: 'busy' };
    // The local CA's root and its leaves are not ACME lineages; padlock run keeps them fresh.
    if (lineage.meta.server.startsWith('padlock:')) return { name, action: 'local' };
    const state = await disk.readState(name);
    const leaf = describeCertificate(lineage.bundle.cert);
    const now = clock.now();
    if (alerts) alertExpiry(alerts, [{ name, notBefore: leaf.notBefore, notAfter: leaf.notAfter, ...(lineage.meta.email ? { email: lineage.meta.email } : {}) }]);
    const revoked = Boolean(state?.['revokedAt']);
    // RFC 9773: when the CA offers renewal information, its window decides (see decideWithAri).
    const source = args['force-renewal'] || revoked ? undefined : await ariSources.get(lineage.meta.server);
    const ari = source ? await checkAri({ source, store: disk, name, certPem: lineage.bundle.cert, notBefore: leaf.notBefore, notAfter: leaf.notAfter, clock, logger, state }) : undefined;
    const decision = decideWithAri(leaf, now, ari, { forced: args['force-renewal'], revoked, obtainedAt: new Date(lineage.meta.updatedAt) });
    const explanationURL = ari?.explanationURL;
    if (!decision.due) return { name, action: 'not-due', dueAt: decision.dueAt.toISOString(), ...(explanationURL ? { explanationURL } : {}) };
    const failure = failureOf(state);
    const until = blockedUntil(failure, now, { forced: args['force-renewal'], ignoreRateLimit: args['ignore-rate-limit'] });
    if (until) return { name, action: 'backoff', until: until.toISOString(), lastError: failure?.lastError };

    const meta: LineageMeta = {
      ...lineage.meta,
      ...(args['deploy-hook'] ? { deployHook: args['deploy-hook'] } : {}),
      ...(args['dry-run'] ? { server: dryRunServer(lineage.meta.server) } : {}),
    };
    const serverCaPath = args['server-ca'] ?? meta.serverCa ?? (process.env['PADLOCK_SERVER_CA'] || undefined);
    const key = JSON.stringify(meta.challenge);
    let responder = responders.get(key);
    if (!responder) {
      responder = responderFor(meta.challenge);
      responders.set(key, responder);
    }
    const store: CertStore = args['dry-run'] ? await dryRunStore(disk, meta.server, name) : disk;
    try {
      // A challenge that cannot be served is a failed renewal too: record it (backoff, alerts).
      await responder.prepare().catch(async (err: unknown) => {
        if (!args['dry-run']) await recordFailure(disk, name, err, clock);
        throw err;
      });
      const [serverCa, roots] = await Promise.all([
        readPemOption('--server-ca', serverCaPath),
        loadTrustAnchors(meta.trustedRoots ? { extraFiles: [meta.trustedRoots] } : {}),
      ]);
      say({ step: 'order', message: `renewing ${name} (${decision.reason})` });
      const { updatedAt: _u, ...request } = meta;
      const result = await obtainLineage({ store, clock, logger, roots }, {
        meta: request,
        account: { agreeTos: true, timeoutMs: args.timeout * 1000, ...(meta.email ? { email: meta.email } : {}), ...(serverCa ? { serverCa } : {}) },
        responder,
        onProgress: (e) => say({ ...e, message: `${name}: ${e.message}` }),
      });
      let hookError: unknown;
      if (meta.deployHook && !args['dry-run'] && result.lineageDir) {
        await runDeployHook({ command: meta.deployHook, lineageDir: result.lineageDir, domains: result.domains }).catch((e: unknown) => (hookError = e));
      }
      if (alerts && failure) alertSuccess(alerts, name, result.domains, result.notAfter, failure.failures, meta.email);
      return { name, action: 'renewed', reason: decision.reason, notAfter: result.notAfter.toISOString(), version: result.version, ...(hookError ? { hookError } : {}), ...(explanationURL ? { explanationURL } : {}) };
    } catch (err) {
      if (err instanceof PadlockError && err.code === 'STORE_LOCKED') return { name, action: 'busy' };
      const e = err instanceof PadlockError ? err : new PadlockError('ACME_PROBLEM', errorMessage(err), { cause: err });
      if (alerts) await alertFailure(alerts, name, e, meta.email).catch(() => undefined);
      return { name, action: 'failed', error: e };
    }
  };

  try {
    // A small pool: at most `concurrency` orders at once, sharing one responder per challenge setting.
    const queue = [...names];
    const workers = Array.from({ length: Math.max(1, Math.min(args.concurrency, queue.length)) }, async () => {
      for (let name = queue.shift(); name !== undefined; name = queue.shift()) outcomes.push(await renewOne(name));
    });
    await Promise.all(workers);
  } finally {
    await Promise.all([...responders.values()].map((r) => r.close()));
    ariSources.close();
    await notifier?.flush();
    await notifier?.close();
  }

  outcomes.sort((a, b) => a.name.localeCompare(b.name));
  const failed = outcomes.filter((o) => o.action === 'failed' || (o.action === 'renewed' && o.hookError));
  const lines = outcomes.map((o) => {
    switch (o.action) {
      case 'renewed': return `${o.name}: renewed (${o.reason}), valid until ${o.notAfter}${o.explanationURL ? `; the CA explains: ${o.explanationURL}` : ''}${o.hookError ? `; deploy hook failed: ${errorMessage(o.hookError)}` : ''}`;
      case 'not-due': return `${o.name}: not due until ${o.dueAt}${o.explanationURL ? ` (the CA explains: ${o.explanationURL})` : ''}`;
      case 'backoff': return `${o.name}: waiting until ${o.until} after a failure (${(o.lastError as { message?: string } | undefined)?.message ?? 'unknown'})`;
      case 'busy': return `${o.name}: skipped, another padlock process is working on it`;
      case 'local': return `${o.name}: issued by padlock's local CA; padlock run renews it`;
      case 'failed': return `${o.name}: FAILED: ${o.error.message} [${o.error.code}]`;
    }
  });
  output(args, {
    ok: failed.length === 0,
    results: outcomes.map((o) => (o.action === 'failed' ? { ...o, error: o.error.toJSON() } : o.action === 'renewed' && o.hookError ? { ...o, hookError: errorMessage(o.hookError) } : o)),
  }, lines.length ? lines.join('\n') : `No certificates in ${disk.location}.`);
  if (failed.length) process.exitCode = 1;
}
