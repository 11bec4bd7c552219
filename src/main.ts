/**
 * The composition root of `padlock run`: builds every part from the
 * validated config, wires them, starts them in a safe order, and stops
 * them on SIGTERM.
 *
 * Start order (so no client ever sees a default certificate that could have
 * been the real one): the first desired state is known (static sites, then
 * the first Docker listing) before the HTTPS port opens. Stored certificates
 * are read in the background from then on, the routed ones first; a
 * handshake for a name not read yet reads that certificate first (and a
 * local name without one gets it from the local CA then), so the port opens
 * without waiting for the store, however many certificates it holds.
 *
 * Ready (`/readyz` 200) means: the routes are known, :80, :443 and the admin
 * API listen, and every routed name is answered, from memory or from the
 * store on its first handshake. The body says how many routed certificates
 * are still to be read, and whether the store can be reached.
 */
import { readFile } from 'node:fs/promises';
import type { RunConfig } from './config/schema.js';
import { staticSites } from './config/static-sites.js';
import { openConfiguredStore } from './store/open-store.js';
import { isRedisStore } from './store/store-config.js';
import { StoreHealthWatch } from './observe/store-health.js';
import { jwkThumbprint } from './tls/keys.js';
import { ensureAccountKey } from './acme/account.js';
import { loadTrustAnchors, type TrustAnchors } from './tls/roots.js';
import { startIdleGc } from './observe/idle-gc.js';
import { CertificateRegistry } from './tls/contexts.js';
import { Http01Solver, TokenMap, TokenMapResponder } from './acme/http01.js';
import type { ChallengeSolver } from './acme/solver.js';
import type { LineageSpec } from './certificates/issuer.js';
import { dns01Solver } from './acme/dns01-solver.js';
import { dnsSettingsFor, providerSettings } from './config/dns-config.js';
import type { DnsChallengeSettings } from './dns/settings.js';
import { AcmeTlsChallenges, AcmeTlsMapPublisher, TlsAlpn01Solver } from './acme/tls-alpn01.js';
import { daemonChallenge, daemonSolvers } from './acme/challenge-choice.js';
import { CertificateManager } from './certificates/manager.js';
import { CertificateEngine } from './certificates/engine.js';
import { IssuerSet } from './certificates/issuers.js';
import { AriSources } from './certificates/ari-poller.js';
import { EngineEventBus } from './events.js';
import { LOCAL_ROOT_LINEAGE } from './tls/local-ca.js';
import { ProxyServer } from './proxy/server.js';
import { ProxyCluster } from './proxy/cluster.js';
import { http2LimitsFromConfig } from './proxy/h2-limits.js';
import { newTicketKeys, rotateTicketKeys, TICKET_KEY_ROTATION_MS } from './tls/session-tickets.js';
import { upstreamGuardFor } from './proxy/upstream-connect.js';
import { configuredOwnPorts } from './proxy/upstream-guard.js';
import { AdminServer } from './observe/admin.js';
import { Metrics, failureReason } from './observe/metrics.js';
import { buildStatusDocument } from './observe/status.js';
import { loadAdminToken } from './observe/admin-auth.js';
import { mergeDesiredState } from './state/merge.js';
import { EMPTY_GRACE_BOOK, graceStep, type GraceChange } from './state/grace.js';
import { EMPTY_DESIRED_STATE, sameDesiredState, type DesiredState } from './state/desired-state.js';
import { createLogger, type Logger } from './log.js';
import { systemClock, type Clock } from './clock.js';
import { PadlockError, errorMessage } from './errors.js';
import { LETSENCRYPT_PRODUCTION, LETSENCRYPT_STAGING } from './acme/directories.js';
import { channelsFromConfig } from './notify/config.js';
import { Notifier } from './notify/notifier.js';
import { attachAlerts } from './notify/alerts.js';
import { companionFromConfig, companionChallenge, companionInitial, companionListener } from './companion/wiring.js';

/** A source of discovered routes (the Docker watcher). */
export interface Discovery {
  start(onState: (state: DesiredState) => void, onStatus: (status: DiscoveryStatus) => void): void;
  stop(): Promise<void>;
}

export interface DiscoveryStatus {
  connected: boolean;
  error?: string;
  since: string;
}

export interface DaemonOptions {
  logger?: Logger;
  clock?: Clock;
  /** Builds the discovery source; null when Docker discovery is off. Injected by tests. */
  discovery?: Discovery | null;
  /** How long to wait for the first discovered state before opening the ports anyway. */
  firstStateTimeoutMs?: number;
  /** Config file name, for messages. */
  configFile?: string;
}

export interface Daemon {
  ports: { http: number; https: number; admin: number };
  /** The current desired state (for tests). */
  desired(): DesiredState;
  certificates: CertificateManager;
  stop(): Promise<void>;
}

export async function startDaemon(config: RunConfig, options: DaemonOptions = {}): Promise<Daemon> {
  const logger = options.logger ?? createLogger({ level: config.logLevel });
  const clock = options.clock ?? systemClock;
  const log = logger.child({ component: 'daemon' });

  // Everything that can be checked before touching the network is checked here, all at once.
  const fixed = staticSites(config.sites, config.localSuffixes, options.configFile, upstreamGuardFor(config), (name) => dnsSettingsFor(config.dns, name) !== undefined)
    .map((s) => (s.profile || !config.profile || !s.https ? s : { ...s, profile: config.profile }));
  const server = config.server ?? (config.staging ? LETSENCRYPT_STAGING : LETSENCRYPT_PRODUCTION);
  const adminToken = await loadAdminToken(config);
  const metrics = new Metrics();
  const [store, , serverCa] = await Promise.all([
    openConfiguredStore(config, process.env, { clock, lockTtlMs: config.storeLockTtl * 1000 }),
    // A --trusted-roots file is read now, so that a bad one stops start-up; the rest waits (below).
    config.trustedRoots ? loadTrustAnchors({ only: [config.trustedRoots] }) : undefined,
    config.serverCa ? readFile(config.serverCa, 'utf8').catch((e: unknown) => {
      throw new PadlockError('CONFIG_INVALID', `serverCa ${config.serverCa}: ${errorMessage(e)}`, { cause: e });
    }) : Promise.resolve(undefined),
  ]);

  // Alerts: email and/or webhook when configured. A failed alert never touches a certificate.
  const channels = await channelsFromConfig(config, process.env);
  const notifier = channels.length ? new Notifier({ channels, store, clock, logger: logger.child({ component: 'notify' }) }) : undefined;

  // A shared store (Redis) can be unreachable: padlock serves from memory, says so in /readyz and
  // /api/status, and alerts after storeAlertAfter seconds.
  const storeHealth = new StoreHealthWatch({ store, clock, logger: log, ...(notifier ? { notifier } : {}), alertAfterMs: config.storeAlertAfter * 1000 });
  storeHealth.start();

  // Companion mode: certificates also go to nginx-proxy's folder, and HTTP-01 through its webroot.
  const companion = companionFromConfig(config, logger);
  const challenge = await companionChallenge(config);
  if (challenge && config.challenge === 'tls-alpn-01') {
    throw new PadlockError('CONFIG_INVALID', 'challenge tls-alpn-01 needs padlock on port 443, but in companion mode (companionWebroot) nginx serves it: use http-01 through the webroot, or run padlock as the proxy');
  }

  // The system's trust anchors are read when the first chain is verified, not at start: that is a
  // bundle and, with SSL_CERT_DIR set, a few hundred more files that an idle proxy never needs.
  let roots: Promise<TrustAnchors> | undefined;
  const daemonRoots = (): Promise<TrustAnchors> => (roots ??= loadTrustAnchors(config.trustedRoots ? { extraFiles: [config.trustedRoots] } : {})
    .catch((err: unknown) => { roots = undefined; throw err; }));

  const tokens = new TokenMap();
  // Reads a routed name's certificate on its first handshake when the background load has not reached it yet.
  const certificateFor = (name: string) => manager.certificateFor(name);
  const registry = new CertificateRegistry({
    maxContexts: config.tlsContextCache,
    load: certificateFor,
    onContextError: (name, err) => log.error('stored certificate cannot be used for TLS', { name, error: errorMessage(err) }),
  });
  const hold = { waitMs: Math.round(config.upstreamWait * 1000), maxHeld: config.heldRequestsMax };
  const acmeTls = new AcmeTlsChallenges();
  const http2 = http2LimitsFromConfig(config);
  // One set of TLS ticket keys for every proxy process, rotated below.
  let ticketKeys = newTicketKeys();
  // workers > 1: the data plane runs in cluster workers; this process keeps everything else.
  const proxyCluster = config.workers > 1
    ? new ProxyCluster({
      workers: config.workers,
      httpPort: config.httpPort,
      httpsPort: config.httpsPort,
      ...(config.bind ? { bind: config.bind } : {}),
      logger,
      logLevel: config.logLevel,
      pretty: config.logFormat === 'pretty' || (config.logFormat === 'auto' && process.stderr.isTTY === true),
      observer: metrics.proxyObserver,
      allowUpstream: config.allowUpstream,
      trustedProxies: config.trustedProxies,
      ownPorts: configuredOwnPorts(config),
      http2,
      ticketKeys,
      tlsContextCache: config.tlsContextCache,
      idleGc: config.idleGc,
      certificateFor,
      hold,
    })
    : undefined;
  const events = new EngineEventBus((event, err) => log.warn('an event listener failed', { event, error: errorMessage(err) }));
  const onAcmeResponse = (ms: number, status: number) => metrics.acmeRequest(ms, status);
  const issuers = new IssuerSet({
    clock, logger, onAcmeResponse,
    ari: new AriSources({ logger, onResponse: onAcmeResponse }),
    // The daemon's one CA and trust settings; a lineage written by padlock issue keeps its own.
    serverCa: async (spec) => (spec.serverCa && spec.serverCa !== config.serverCa ? readFile(spec.serverCa, 'utf8') : serverCa),
    roots: async (spec) => (spec.trustedRoots && spec.trustedRoots !== config.trustedRoots ? loadTrustAnchors({ extraFiles: [spec.trustedRoots] }) : daemonRoots()),
    localSuffixes: config.localSuffixes,
  });
  // How HTTP-01 is answered: the daemon's own :80 (with workers: once every worker answers), or nginx's webroot in companion mode.
  const responder = challenge?.responder ?? proxyCluster?.challengeResponder() ?? new TokenMapResponder(tokens, `padlock's HTTP server on port ${config.httpPort}`);
  const solver = new Http01Solver(responder);
  // DNS-01 (wildcards, padlock.challenge=dns-01): one solver per provider setting, shared by every order.
  const dnsSolvers = new Map<string, ChallengeSolver>();
  const dnsSolver = (settings: DnsChallengeSettings): ChallengeSolver => {
    const key = JSON.stringify(settings);
    let dns = dnsSolvers.get(key);
    if (!dns) dnsSolvers.set(key, (dns = dns01Solver(settings, { store, logger, clock })));
    return dns;
  };
  // TLS-ALPN-01 on :443 (with workers: once every worker answers); none in companion mode, where nginx holds :443.
  const tlsAlpnSolver = challenge ? undefined
    : new TlsAlpn01Solver(proxyCluster?.acmeTlsPublisher() ?? new AcmeTlsMapPublisher(acmeTls, `padlock's HTTPS server on port ${config.httpsPort}`));
  const solversFor = (spec: LineageSpec): ChallengeSolver[] => (spec.challenge.type === 'dns-01'
    ? [dnsSolver(spec.challenge)]
    : daemonSolvers(config.challenge, spec.challenge, { http01: solver, tlsAlpn01: tlsAlpnSolver }));
  const engine = new CertificateEngine({ store, clock, logger, events, issuerFor: (spec) => issuers.for(spec), solversFor });
  const manager = new CertificateManager({
    engine,
    clock,
    logger,
    server,
    account: { agreeTos: config.agreeTos, ...(config.email ? { email: config.email } : {}) },
    challenge: challenge?.challenge ?? daemonChallenge(config.challenge, { type: 'standalone', port: config.httpPort }, config.httpsPort),
    dnsChallengeFor: (names) => names.map((n) => dnsSettingsFor(config.dns, n)).find((s) => s !== undefined),
    ...(config.serverCa ? { serverCaFile: config.serverCa } : {}),
    ...(config.trustedRoots ? { trustedRootsFile: config.trustedRoots } : {}),
    concurrency: config.concurrency,
    renewCron: config.renewCron,
    onSnapshot: (snapshot, pending) => (proxyCluster ?? registry).replace(snapshot, pending),
  });
  events.on('cert_obtained', () => metrics.renewal('success'));
  events.on('cert_renewed', () => metrics.renewal('success'));
  events.on('cert_failed', ({ error }) => metrics.renewal('failure', failureReason(error)));
  const proxy = proxyCluster ?? new ProxyServer({
    httpPort: config.httpPort, httpsPort: config.httpsPort, ...(config.bind ? { bind: config.bind } : {}), tokens, acmeTls, certificates: registry, logger, observer: metrics.proxyObserver,
    allowUpstream: config.allowUpstream, trustedProxies: config.trustedProxies, ownPorts: configuredOwnPorts(config), http2, ticketKeys, hold,
  });
  const ticketRotation = setInterval(() => {
    ticketKeys = rotateTicketKeys(ticketKeys);
    proxy.setTicketKeys(ticketKeys);
  }, TICKET_KEY_ROTATION_MS);
  ticketRotation.unref();
  metrics.setSource({ certificates: () => manager.status(), proxy: () => proxy.stats(), now: () => clock.now() });

  let discovered: DesiredState = EMPTY_DESIRED_STATE;
  let desired: DesiredState = mergeDesiredState(fixed, discovered);
  let discoveryStatus: DiscoveryStatus | undefined;
  let ready = false;
  const apply = (next: DesiredState) => {
    if (sameDesiredState(next, desired)) return;
    desired = next;
    proxy.setSites(desired.sites);
    manager.setSites(desired.sites);
    metrics.forgetHostsExcept(desired.sites.map((site) => site.host));
    for (const p of desired.problems) log.warn('route disabled', { ...p });
    log.info('routes updated', { sites: desired.sites.length, problems: desired.problems.length });
  };

  // The grace period (state/grace.ts): a name whose container stopped keeps its route and certificate for routeGrace seconds.
  const graceMs = config.routeGrace * 1000;
  let graceBook = EMPTY_GRACE_BOOK;
  let graceTimer: NodeJS.Timeout | undefined;
  const graceLog = logger.child({ component: 'grace' });
  const withGrace = (state: DesiredState): DesiredState => {
    const step = graceStep(graceBook, state, clock.now(), graceMs);
    graceBook = step.book;
    for (const change of step.changes) logGraceChange(graceLog, change);
    clearTimeout(graceTimer);
    graceTimer = undefined;
    if (step.nextExpiry) {
      // Re-applied at the first expiry: the expired name goes, the others keep their time.
      graceTimer = setTimeout(() => apply(mergeDesiredState(fixed, withGrace(discovered))), Math.max(0, step.nextExpiry.getTime() - clock.now().getTime()) + 5);
      graceTimer.unref();
    }
    return step.state;
  };

  if (notifier) attachAlerts({ notifier, store, clock, logger }, events);
  if (companion) {
    const toCompanion = companionListener(store, companion);
    // A certificate renewed by another process (padlock renew from cron) reaches nginx too.
    for (const e of ['cert_obtained', 'cert_renewed', 'cert_changed'] as const) events.on(e, toCompanion);
  }
  // An existing local CA root without name constraints (or without a configured suffix) is replaced now,
  // with a warning to run `padlock trust` again; the leaves it signed are then reissued from the new one.
  if (await store.readLineage(LOCAL_ROOT_LINEAGE).catch(() => null)) await issuers.localIssuer().root(store);
  proxy.setSites(desired.sites);
  manager.setSites(desired.sites);

  const discovery = options.discovery ?? null;
  if (discovery) {
    let first: () => void = () => {};
    const firstState = new Promise<void>((resolve) => (first = resolve));
    discovery.start(
      (state) => {
        discovered = state;
        apply(mergeDesiredState(fixed, withGrace(discovered)));
        first();
      },
      (status) => {
        discoveryStatus = status;
        if (status.connected) log.info('docker connected');
        else log.warn('docker unreachable; keeping the last good routes', { error: status.error });
      },
    );
    const timeout = options.firstStateTimeoutMs ?? 10_000;
    const timedOut = await Promise.race([firstState.then(() => false), new Promise<boolean>((r) => setTimeout(() => r(true), timeout).unref())]);
    if (timedOut) log.warn('no route listing from Docker yet; opening the ports with the static routes only', { waitedMs: timeout });
  }
  // Now that the routes are known: read the stored certificates in the background, the routed ones first.
  await manager.load();
  if (companion) await companionInitial(store, companion);

  const admin = new AdminServer({
    listen: config.adminListen,
    ...(adminToken ? { token: adminToken } : {}),
    logger,
    metrics,
    ready: () => ready,
    readyDetails: () => ({ certificates: manager.loadProgress(), store: storeHealth.view() }),
    status: () => buildStatusDocument({
      now: clock.now(),
      ready,
      listeners: ports,
      docker: discovery ? discoveryStatus ?? { connected: false, since: null } : 'disabled',
      sites: desired.sites,
      problems: desired.problems,
      certificates: manager.status(),
      proxy: proxy.stats(),
      upstreams: proxy.upstreamStatus(),
      sections: {
        store: storeHealth.view(),
        notifications: notifier ? notifier.describe() : 'none configured',
        companion: companion ? companion.status() : 'disabled',
        ...(proxyCluster ? { workers: proxyCluster.describe() } : {}),
      },
    }),
  });


  // Several replicas share one store: any of them answers any HTTP-01 validation, statelessly, with the shared
  // account key's thumbprint (acme/http01.ts TokenMap), so no token has to reach the others first.
  let statelessTimer: NodeJS.Timeout | undefined;
  if (isRedisStore(config)) {
    const stateless = async () => {
      const key = await ensureAccountKey(store, server, { ...(config.email ? { email: config.email } : {}), clock });
      const thumbprint = jwkThumbprint(key);
      tokens.setStateless(thumbprint);
      proxyCluster?.setStateless(thumbprint);
    };
    await stateless().catch((err: unknown) => log.warn('cannot read the shared ACME account yet; this replica answers only its own HTTP-01 challenges until it can', { error: errorMessage(err) }));
    statelessTimer = setInterval(() => void stateless().catch(() => undefined), 30_000);
    statelessTimer.unref();
  }

  let ports = { http: 0, https: 0, admin: 0 };
  try {
    const listening = await proxy.listen();
    const adminAt = await admin.listen();
    ports = { http: listening.httpPort, https: listening.httpsPort, admin: adminAt.port };
    // The admin port as bound (it was 0 in the config, say): no route may reach it.
    proxy.setOwnPorts([ports.http, ports.https, ports.admin]);
  } catch (err) {
    clearInterval(ticketRotation);
    await proxy.close({ drainMs: 0 }).catch(() => undefined);
    await discovery?.stop();
    throw err;
  }
  manager.start();
  // Challenge records left by a crash are removed now, not only at the next DNS-01 order: preparing each
  // provider's solver checks its credentials and cleans its leftovers (in the background; a failure is logged).
  const dns = config.dns;
  if (dns) {
    for (const p of dns.providers) {
      void dnsSolver(providerSettings(dns, p)).prepare()
        .catch((err: unknown) => log.warn('a DNS provider is not usable yet; its DNS-01 orders will fail until it is', { provider: p.provider, zones: p.zones, error: errorMessage(err) }));
    }
  }
  ready = true;
  // Memory back to the system once start-up (and later each busy spell) is over; workers run their own.
  const idleGc = config.idleGc ? startIdleGc({ logger: log }) : undefined;
  log.info('padlock is serving', { ...ports, sites: desired.sites.length, server });

  return {
    ports,
    desired: () => desired,
    certificates: manager,
    stop: async () => {
      ready = false;
      log.info('stopping: draining connections', { drainSeconds: config.drainSeconds });
      await discovery?.stop();
      clearTimeout(graceTimer);
      await Promise.all([proxy.close({ drainMs: config.drainSeconds * 1000 }), admin.close(), manager.stop(2_000)]);
      issuers.close();
      storeHealth.stop();
      idleGc?.stop();
      clearInterval(ticketRotation);
      if (statelessTimer) clearInterval(statelessTimer);
      await notifier?.close();
      await companion?.close();
      await challenge?.responder.close();
      await Promise.all([...dnsSolvers.values()].map((s) => s.close().catch(() => undefined)));
      await store.close().catch((err: unknown) => log.warn('could not close the store', { error: errorMessage(err) }));
      log.info('stopped');
    },
  };
}

/** One line per grace period change: why a name stays (answered 503) or goes. */
function logGraceChange(log: Logger, change: GraceChange): void {
  switch (change.kind) {
    case 'started':
      log.warn('no container serves this name any more; keeping its certificate and answering 503 until the grace period ends', { host: change.host, until: change.until, containers: change.containers });
      return;
    case 'back':
      log.info('a container serves this name again; its grace period is over', { host: change.host });
      return;
    case 'expired':
      log.warn('grace period over with no container back; the name is no longer served', { host: change.host });
      return;
    case 'relabelled':
      log.info('the container was recreated without this name; the name is no longer served', { host: change.host });
      return;
    case 'removed':
      log.info('name removed without a grace period', { host: change.host, reason: change.reason });
      return;
  }
}
