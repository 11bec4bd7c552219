/**
 * A small FAKE ACME front for a real Pebble, standing in for what Pebble 2.4
 * (Debian) cannot do: ARI (RFC 9773: `renewalInfo`, windows, `Retry-After`,
 * `alreadyReplaced`) and profiles (draft-ietf-acme-profiles: `meta.profiles`).
 *
 * It serves, over plain HTTP on 127.0.0.1, a COPY of the real Pebble's
 * directory at `/dir` with:
 * - `renewalInfo` pointing here (`/renewal-info`), unless `renewalInfo: false`;
 * - `meta.profiles` added (default `classic` and `shortlived`; `null` for none);
 * - `newOrder` left at Pebble (`newOrder: 'pebble'`, the default) or pointing
 *   here (`'record'`): the fake then decodes and records each newOrder JWS
 *   payload (no signature check) and answers with the configured problems in
 *   turn, the last one repeating. It cannot pass an order on to Pebble: the
 *   JWS `url` header names the fake, and Pebble would refuse it.
 * Every other URL (nonces, accounts, orders, finalize) still goes to Pebble.
 *
 * The directory itself can misbehave (`setDirectory`): answer a status such
 * as 503 or 429 with a `Retry-After`, hang without answering, reset the
 * connection, or send a body larger than padlock accepts. Every directory
 * request is counted, so a test can prove padlock did not ask.
 *
 * `GET /renewal-info/<CertID>` answers the answer set for that CertID, or the
 * default one, and records each request. `renewalInfo: 'hang'` accepts those
 * requests and never answers. Modes are relative to the fake's
 * clock at the time of the request: `future` (starts in a day), `current`
 * (opened an hour ago, closes in an hour), `past` (closed an hour ago),
 * `error` (HTTP 500 serverInternal), `invalid` (end before start); or give
 * an explicit `window`.
 */
import http from 'node:http';
import https from 'node:https';
import { readFile } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import type { Pebble } from './pebble.js';

const HOUR = 3_600_000;
const DAY = 86_400_000;

export type AriMode = 'future' | 'current' | 'past' | 'error' | 'invalid' | 'hang';

export interface AriAnswer {
  /** Default `future`; ignored when `window` is given. */
  mode?: AriMode;
  /** An exact window instead of a mode. */
  window?: { start: Date; end: Date };
  explanationURL?: string;
  /** The `Retry-After` header: seconds, or an HTTP date text; `null` sends none. Default 21600 (the RFC's example). */
  retryAfter?: number | string | null;
  /** HTTP status for `error` (default 500). */
  status?: number;
}

export interface NewOrderProblem {
  status: number;
  /** Short ACME type (`alreadyReplaced`) or a full URN. */
  type: string;
  detail?: string;
  /** `Retry-After`: seconds, or any text (an HTTP date, garbage), sent as is. */
  retryAfter?: number | string;
}

/** How the fake answers `GET /dir`. */
export type DirectoryMode =
  | 'ok'
  | { status: number; retryAfter?: string; body?: string }
  /** Accept the connection and never answer. */
  | 'hang'
  /** Reset the connection as soon as the request arrives. */
  | 'reset'
  /** A 200 whose JSON body is larger than `bytes`. */
  | { huge: number };

export interface FakeAcmeOptions {
  /** Advertise `renewalInfo` in the directory (default true); `hang` advertises it and never answers it. */
  renewalInfo?: boolean | 'hang';
  /** How `GET /dir` is answered (default `ok`). */
  directory?: DirectoryMode;
  /** `meta.profiles`; `null` leaves it out. Default `{ classic, shortlived }`. */
  profiles?: Record<string, string> | null;
  /** Where newOrder goes (default `pebble`). */
  newOrder?: 'pebble' | 'record';
  /** With `newOrder: 'record'`: the answers in turn, the last repeating. Default: 409 alreadyReplaced, then 500 serverInternal. */
  newOrderProblems?: NewOrderProblem[];
  /** The default RenewalInfo answer (default `future`). */
  ari?: AriMode | AriAnswer;
  /** Answers for particular CertIDs. */
  ariByCertId?: Record<string, AriMode | AriAnswer>;
  /** The fake's clock, for relative windows and the records (default: the wall clock). */
  now?: () => Date;
}

export interface RecordedNewOrder {
  /** The decoded JWS payload: `identifiers`, and `replaces` / `profile` when sent. */
  payload: Record<string, unknown>;
  /** The decoded JWS protected header. */
  protectedHeader: Record<string, unknown>;
  at: Date;
}

export interface FakeAcme {
  /** `http://127.0.0.1:PORT/dir`: give this to padlock as the server. */
  directoryUrl: string;
  /** `http://127.0.0.1:PORT/renewal-info`. */
  renewalInfoUrl: string;
  /** Every `GET /renewal-info/...`, in order. */
  renewalInfoRequests: Array<{ certId: string; path: string; at: Date }>;
  /** Every newOrder the fake answered (`newOrder: 'record'` only). */
  newOrders: RecordedNewOrder[];
  /** Changes the answer for one CertID, or the default one when `certId` is omitted. */
  setAri(answer: AriMode | AriAnswer, certId?: string): void;
  /** Replaces the queue of newOrder answers. */
  setNewOrderProblems(problems: NewOrderProblem[]): void;
  /** Switches where newOrder goes, for directories fetched from now on. */
  setNewOrderMode(mode: 'pebble' | 'record'): void;
  /** Changes how `GET /dir` is answered. */
  setDirectory(mode: DirectoryMode): void;
  /** How many `GET /dir` requests arrived. */
  directoryRequests(): number;
  close(): Promise<void>;
}

const DEFAULT_PROFILES = {
  classic: 'The default profile: 90 days, server and client auth (fake)',
  shortlived: 'Six-day certificates (fake)',
};

const DEFAULT_NEW_ORDER_PROBLEMS: NewOrderProblem[] = [
  { status: 409, type: 'alreadyReplaced', detail: 'the certificate named in "replaces" was already replaced by another order' },
  { status: 500, type: 'serverInternal', detail: 'the fake CA cannot create orders' },
];

function fetchJson(url: string, ca: string): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    https.get(url, { ca, timeout: 5000, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (d: string) => (body += d)).on('end', () => {
        if (res.statusCode !== 200) return reject(new Error(`fake-acme: ${url} answered HTTP ${res.statusCode}`));
        try {
          resolve(JSON.parse(body) as Record<string, unknown>);
        } catch (err) {
          reject(new Error(`fake-acme: ${url} did not answer JSON: ${(err as Error).message}`));
        }
      });
    }).on('error', reject).on('timeout', function (this: http.ClientRequest) {
      this.destroy(new Error(`fake-acme: ${url} did not answer within 5 s`));
    });
  });
}

function decodeJson(b64url: unknown): Record<string, unknown> {
  if (typeof b64url !== 'string' || b64url === '') return {};
  try {
    return JSON.parse(Buffer.from(b64url, 'base64url').toString('utf8')) as Record<string, unknown>;
  } catch {
    return {};
  }
}

const urn = (type: string): string => (type.startsWith('urn:') ? type : `urn:ietf:params:acme:error:${type}`);

/**
 * Starts the fake in front of `pebble` on a free loopback port. It reads
 * Pebble's directory once, at start. Call `close()` after the test.
 */
export async function startFakeAcme(pebble: Pebble, opts: FakeAcmeOptions = {}): Promise<FakeAcme> {
  const ca = await readFile(pebble.serverCaFile, 'utf8');
  const upstream = await fetchJson(pebble.directoryUrl, ca);
  const now = opts.now ?? (() => new Date());
  let defaultAri: AriMode | AriAnswer = opts.ari ?? 'future';
  const byCertId = new Map(Object.entries(opts.ariByCertId ?? {}));
  let problems = [...(opts.newOrderProblems ?? DEFAULT_NEW_ORDER_PROBLEMS)];
  let newOrderMode = opts.newOrder ?? 'pebble';
  let directoryMode: DirectoryMode = opts.directory ?? 'ok';
  let directoryCount = 0;
  const hanging = new Set<import('node:net').Socket>();
  let answered = 0;
  const renewalInfoRequests: FakeAcme['renewalInfoRequests'] = [];
  const newOrders: RecordedNewOrder[] = [];

  const send = (res: http.ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void => {
    const problem = status >= 400 && typeof body === 'object' && body !== null && 'type' in body;
    res.writeHead(status, { 'content-type': problem ? 'application/problem+json' : 'application/json', ...headers }).end(JSON.stringify(body));
  };

  const answerRenewalInfo = (res: http.ServerResponse, id: string): void => {
    const configured = byCertId.get(id) ?? defaultAri;
    const a: AriAnswer = typeof configured === 'string' ? { mode: configured } : configured;
    const retry = a.retryAfter === undefined ? '21600' : a.retryAfter === null ? undefined : String(a.retryAfter);
    const headers: Record<string, string> = retry === undefined ? {} : { 'retry-after': retry };
    const t = now().getTime();
    const mode = a.window ? undefined : (a.mode ?? 'future');
    if (mode === 'error') {
      send(res, a.status ?? 500, { type: urn('serverInternal'), detail: 'the fake CA cannot compute renewal information', status: a.status ?? 500 }, headers);
      return;
    }
    const [start, end] = a.window
      ? [a.window.start.getTime(), a.window.end.getTime()]
      : mode === 'current' ? [t - HOUR, t + HOUR]
        : mode === 'past' ? [t - 2 * HOUR, t - HOUR]
          : mode === 'invalid' ? [t + 2 * DAY, t + DAY]
            : [t + DAY, t + 2 * DAY];
    send(res, 200, {
      suggestedWindow: { start: new Date(start).toISOString(), end: new Date(end).toISOString() },
      ...(a.explanationURL ? { explanationURL: a.explanationURL } : {}),
    }, headers);
  };

  const server = http.createServer((req, res) => {
    const port = (server.address() as AddressInfo).port;
    const path = new URL(req.url ?? '/', 'http://127.0.0.1').pathname;
    if (path === '/dir' && (req.method === 'GET' || req.method === 'HEAD')) {
      req.resume();
      directoryCount += 1;
      const mode = directoryMode;
      if (mode === 'hang') {
        hanging.add(req.socket);
        return;
      }
      if (mode === 'reset') {
        req.socket.resetAndDestroy();
        return;
      }
      if (typeof mode === 'object' && 'status' in mode) {
        res.writeHead(mode.status, { 'content-type': mode.body ? 'text/html' : 'application/problem+json', ...(mode.retryAfter !== undefined ? { 'retry-after': mode.retryAfter } : {}) })
          .end(mode.body ?? JSON.stringify({ type: urn('serverInternal'), detail: 'the fake CA is down for maintenance', status: mode.status }));
        return;
      }
      if (typeof mode === 'object' && 'huge' in mode) {
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ ...upstream, padding: 'x'.repeat(mode.huge) }));
        return;
      }
      const meta = { ...(upstream.meta as Record<string, unknown> | undefined) };
      const profiles = opts.profiles === undefined ? DEFAULT_PROFILES : opts.profiles;
      if (profiles) meta.profiles = profiles;
      send(res, 200, {
        ...upstream,
        ...(opts.renewalInfo === false ? {} : { renewalInfo: `http://127.0.0.1:${port}/renewal-info` }),
        ...(newOrderMode === 'record' ? { newOrder: `http://127.0.0.1:${port}/new-order` } : {}),
        meta,
      });
      return;
    }
    if (path.startsWith('/renewal-info/') && req.method === 'GET' && opts.renewalInfo !== false) {
      req.resume();
      const id = decodeURIComponent(path.slice('/renewal-info/'.length));
      renewalInfoRequests.push({ certId: id, path, at: now() });
      const configured = byCertId.get(id) ?? defaultAri;
      if (opts.renewalInfo === 'hang' || configured === 'hang' || (typeof configured === 'object' && configured.mode === 'hang')) {
        hanging.add(req.socket);
        return;
      }
      answerRenewalInfo(res, id);
      return;
    }
    if (path === '/new-order' && req.method === 'POST' && newOrderMode === 'record') {
      let body = '';
      req.setEncoding('utf8').on('data', (d: string) => (body += d)).on('end', () => {
        let jws: Record<string, unknown> = {};
        try {
          jws = JSON.parse(body) as Record<string, unknown>;
        } catch {
          /* recorded as empty */
        }
        newOrders.push({ payload: decodeJson(jws.payload), protectedHeader: decodeJson(jws.protected), at: now() });
        const p = problems[Math.min(answered, problems.length - 1)] ?? DEFAULT_NEW_ORDER_PROBLEMS[1]!;
        answered += 1;
        send(res, p.status, { type: urn(p.type), detail: p.detail ?? p.type, status: p.status },
          p.retryAfter !== undefined ? { 'retry-after': String(p.retryAfter) } : {});
      });
      return;
    }
    req.resume();
    send(res, 404, { type: urn('malformed'), detail: `the fake CA has no ${req.method} ${path}`, status: 404 });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  let closed: Promise<void> | undefined;
  return {
    directoryUrl: `http://127.0.0.1:${port}/dir`,
    renewalInfoUrl: `http://127.0.0.1:${port}/renewal-info`,
    renewalInfoRequests,
    newOrders,
    setAri(answer, certId) {
      if (certId === undefined) defaultAri = answer;
      else byCertId.set(certId, answer);
    },
    setNewOrderMode(mode) {
      newOrderMode = mode;
    },
    setNewOrderProblems(next) {
      problems = [...next];
      answered = 0;
    },
    setDirectory(mode) {
      directoryMode = mode;
    },
    directoryRequests: () => directoryCount,
    close: () =>
      (closed ??= new Promise<void>((resolve) => {
        for (const sock of hanging) sock.destroy();
        server.closeAllConnections();
        server.close(() => resolve());
      })),
  };
}

/**
 * The fakes a test file starts in front of one Pebble: `start` starts one,
 * `closeAll` (in the file's `after`) closes every one started.
 */
export function fakeAcmes(pebble: () => Pebble): { start: (opts?: FakeAcmeOptions) => Promise<FakeAcme>; closeAll: () => Promise<void> } {
  const started: FakeAcme[] = [];
  return {
    start: async (opts = {}) => {
      const f = await startFakeAcme(pebble(), opts);
      started.push(f);
      return f;
    },
    closeAll: async () => {
      for (const f of started.splice(0)) await f.close();
    },
  };
}
