/**
 * The entry module of a data-plane worker process (`workers` > 1; see
 * `proxy/cluster.ts`). It runs one `ProxyServer` (:80 and :443: on Linux its
 * own SO_REUSEPORT sockets, else sockets shared through `node:cluster`) from the state the primary
 * sends: routes, certificates, HTTP-01 tokens and TLS-ALPN-01 challenge
 * certificates. It never touches the store,
 * the CA or Docker.
 *
 * Signals: SIGTERM and SIGINT are ignored here; the primary gets them too
 * (process group, systemd, Docker) and drains every worker itself. If the
 * primary dies, the IPC channel closes and the cluster module exits this
 * process.
 */
import cluster from 'node:cluster';
import { TokenMap } from '../acme/http01.js';
import { AcmeTlsChallenges } from '../acme/tls-alpn01.js';
import { createLogger, type Logger } from '../log.js';
import { startIdleGc, type IdleGc } from '../observe/idle-gc.js';
import { prettyWriter } from '../observe/pretty-log.js';
import { CertificateRegistry, type CertificateEntry } from '../tls/contexts.js';
import { ticketKeysFromWire } from '../tls/session-tickets.js';
import { durationUnits, type FromWorker, type ToWorker, type WorkerSettings } from './cluster.js';
import { ProxyServer, type ProxyObserver } from './server.js';
import type { HoldOutcome } from './hold.js';
import type { UnavailableReason } from './forward.js';

if (!cluster.isWorker || typeof process.send !== 'function') {
  process.stderr.write('padlock: proxy/worker.js runs only as a cluster worker of `padlock run --workers N`\n');
  process.exit(2);
}

const send = (msg: FromWorker, cb?: () => void): void => {
  if (!process.connected) return;
  process.send!(msg, undefined, {}, () => cb?.());
};

const tokens = new TokenMap();
const acmeTls = new AcmeTlsChallenges();
let certs = new Map<string, CertificateEntry>();
let pending = new Set<string>();
/** A pending name's read answers longer than this are given up: the handshake is refused (its own timeout is shorter). */
const CERT_REQUEST_TIMEOUT_MS = 30_000;
const certRequests = new Map<number, (entry: CertificateEntry | undefined) => void>();
let nextCertRequest = 1;

/** Asks the primary for a pending name's certificate (see cluster.ts); undefined when it has none or does not answer. */
function requestCertificate(name: string): Promise<CertificateEntry | undefined> {
  return new Promise((resolve) => {
    const id = nextCertRequest++;
    const timer = setTimeout(() => done(undefined), CERT_REQUEST_TIMEOUT_MS);
    timer.unref();
    const done = (entry: CertificateEntry | undefined): void => {
      clearTimeout(timer);
      certRequests.delete(id);
      resolve(entry);
    };
    certRequests.set(id, done);
    send({ t: 'cert-request', id, name });
  });
}
let proxy: ProxyServer | undefined;
let registry: CertificateRegistry | undefined;
let log: Logger | undefined;
let reportTimer: NodeJS.Timeout | undefined;
let idleGc: IdleGc | undefined;
let lastUpstreams = '';
let closing = false;

// Metric events, batched until the next report.
const requests = new Map<string, [string | null, number, number, number]>();
const upstreamErrors = new Map<string, [string, string, number]>();
const held = new Map<string, [string, HoldOutcome, number, number]>();
const unavailable = new Map<string, [string, UnavailableReason, number]>();
const observer: ProxyObserver = {
  request(host, status, seconds) {
    const units = durationUnits(seconds);
    const key = `${host ?? ''}\0${status}\0${units}`;
    const hit = requests.get(key);
    if (hit) hit[3]++;
    else requests.set(key, [host ?? null, status, units, 1]);
  },
  upstreamError(host, error) {
    const key = `${host}\0${error}`;
    const hit = upstreamErrors.get(key);
    if (hit) hit[2]++;
    else upstreamErrors.set(key, [host, error, 1]);
  },
  held(host, outcome, seconds) {
    const units = durationUnits(seconds);
    const key = `${host}\0${outcome}\0${units}`;
    const hit = held.get(key);
    if (hit) hit[3]++;
    else held.set(key, [host, outcome, units, 1]);
  },
  unavailable(host, reason) {
    const key = `${host}\0${reason}`;
    const hit = unavailable.get(key);
    if (hit) hit[2]++;
    else unavailable.set(key, [host, reason, 1]);
  },
};

function report(cb?: () => void): void {
  if (!proxy) return cb?.();
  const upstreams = proxy.upstreamStatus();
  const json = JSON.stringify(upstreams);
  const changed = json !== lastUpstreams;
  lastUpstreams = json;
  send({
    t: 'report',
    stats: proxy.stats(),
    ...(changed ? { upstreams } : {}),
    requests: [...requests.values()],
    upstreamErrors: [...upstreamErrors.values()],
    held: [...held.values()],
    unavailable: [...unavailable.values()],
  }, cb);
  requests.clear();
  upstreamErrors.clear();
  held.clear();
  unavailable.clear();
}

async function init(settings: WorkerSettings, msg: Extract<ToWorker, { t: 'init' }>): Promise<void> {
  log = createLogger({ level: settings.logLevel, ...(settings.pretty ? { write: prettyWriter(process.stderr) } : {}) }, { worker: settings.slot });
  const logger = log;
  for (const [token, keyAuthorization] of msg.tokens) tokens.set(token, keyAuthorization);
  tokens.setStateless(msg.stateless);
  for (const [name, entry] of msg.acmeTls) setAcmeTls(name, entry);
  certs = new Map(msg.certs);
  pending = new Set(msg.pending);
  registry = new CertificateRegistry({
    maxContexts: settings.tlsContextCache,
    load: requestCertificate,
    onContextError: (name, err) => logger.error('stored certificate cannot be used for TLS', { name, error: (err as Error).message }),
  });
  registry.replace(certs, pending);
  proxy = new ProxyServer({
    httpPort: settings.httpPort,
    httpsPort: settings.httpsPort,
    ...(settings.bind ? { bind: settings.bind } : {}),
    ...(settings.reusePort ? { reusePort: true } : {}),
    tokens,
    acmeTls,
    certificates: registry,
    logger,
    observer,
    allowUpstream: settings.allowUpstream,
    trustedProxies: settings.trustedProxies,
    ownPorts: settings.ownPorts,
    http2: settings.http2,
    ticketKeys: ticketKeysFromWire(msg.ticketKeys),
    ...(settings.hold ? { hold: settings.hold } : {}),
  });
  proxy.setSites(msg.sites);
  try {
    const ports = await proxy.listen();
    send({ t: 'listening', ...ports });
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    send({ t: 'listen-error', message: e.message, ...(e.code ? { code: e.code } : {}) }, () => process.exit(1));
    return;
  }
  reportTimer = setInterval(() => report(), settings.reportMs);
  reportTimer.unref();
  if (settings.idleGc !== false) idleGc = startIdleGc({ logger });
}

async function close(drainMs: number): Promise<void> {
  if (closing) return;
  closing = true;
  if (reportTimer) clearInterval(reportTimer);
  idleGc?.stop();
  await proxy?.close({ drainMs });
  // The last counts, then goodbye.
  report(() => send({ t: 'closed' }, () => process.exit(0)));
  if (!proxy || !process.connected) process.exit(0);
}

process.on('message', (msg: ToWorker) => {
  switch (msg.t) {
    case 'init':
      void init(msg.settings, msg).catch((err: unknown) => {
        send({ t: 'listen-error', message: (err as Error).message }, () => process.exit(1));
      });
      return;
    case 'sites':
      proxy?.setSites(msg.sites);
      return;
    case 'certs': {
      const next = new Map(certs);
      for (const name of msg.del) next.delete(name);
      for (const [name, entry] of msg.set) next.set(name, entry);
      const waiting = new Set(pending);
      for (const name of msg.pending.del) waiting.delete(name);
      for (const name of msg.pending.add) waiting.add(name);
      certs = next;
      pending = waiting;
      registry?.replace(next, waiting);
      return;
    }
    case 'ticket-keys':
      proxy?.setTicketKeys(ticketKeysFromWire(msg.keys));
      return;
    case 'cert':
      certRequests.get(msg.id)?.(msg.entry);
      return;
    case 'own-ports':
      proxy?.setOwnPorts(msg.ports);
      return;
    case 'stateless':
      tokens.setStateless(msg.thumbprint);
      return;
    case 'token':
      if (msg.set) tokens.set(msg.set[0], msg.set[1]);
      if (msg.del !== undefined) tokens.delete(msg.del);
      send({ t: 'ack', id: msg.id });
      return;
    case 'acme-tls':
      if (msg.set) setAcmeTls(msg.set[0], msg.set[1]);
      if (msg.del) acmeTls.delete(msg.del[0], msg.del[1]);
      send({ t: 'ack', id: msg.id });
      return;
    case 'close':
      void close(msg.drainMs).catch((err: unknown) => {
        log?.error('drain failed', { error: (err as Error).message });
        process.exit(1);
      });
      return;
  }
});
/** A certificate that makes no TLS context is logged, not fatal: that challenge fails at the CA, the worker keeps serving. */
function setAcmeTls(name: string, entry: Parameters<AcmeTlsChallenges['set']>[1]): void {
  try {
    acmeTls.set(name, entry);
  } catch (err) {
    log?.error('TLS-ALPN-01 challenge certificate cannot be used', { name, error: (err as Error).message });
  }
}

process.on('SIGTERM', () => {});
process.on('SIGINT', () => {});
send({ t: 'hello' });
