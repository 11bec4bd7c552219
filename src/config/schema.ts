/**
 * `padlock run`'s configuration: one schema is the single source of truth
 * for every key's type, default and validation. Flags, `PADLOCK_*` env vars
 * and the config file are merged first (flag > env > file > default), then
 * validated once, and every problem is reported at once with its path.
 */
import { z } from 'zod';
import { shownValue } from './shown.js';
import { Cron } from 'croner';
import { notifyConfigSchema } from '../notify/config.js';
import { companionConfigSchema, companionConfigProblems } from '../companion/config.js';
import { adminConfigSchema, adminAccessProblem } from '../observe/admin-auth.js';
import { PadlockError } from '../errors.js';
import { storeConfigSchema, storeConfigProblems } from '../store/store-config.js';
import { cidrProblem } from '../proxy/upstream-guard.js';
import { DEFAULT_TLS_CONTEXT_CACHE } from '../tls/contexts.js';

/** A cron expression croner accepts: five fields, or six with seconds first. Nothing is scheduled. */
function validCron(value: string): boolean {
  try {
    new Cron(value, { paused: true }).stop();
    return true;
  } catch {
    return false;
  }
}
import { dnsConfigSchema, dnsConfigProblems } from './dns-config.js';

/** Keys only the config file can set (structured values, no flag or env var). */
export const FILE_ONLY_KEYS: ReadonlySet<string> = new Set(['sites', 'dns']);

const cidr = z.string().superRefine((v, ctx) => {
  const problem = cidrProblem(v);
  if (problem) ctx.addIssue({ code: 'custom', message: problem });
});

const port = (what: string) => z.number().int().min(0, `${what} must be a port (0-65535)`).max(65535, `${what} must be a port (0-65535)`);

export const staticSiteSchema = z.object({
  host: z.string().min(1),
  upstream: z.union([z.string(), z.array(z.string()).min(1)]),
  profile: z.string().regex(/^[A-Za-z0-9._-]{1,64}$/).optional(),
  redirect: z.boolean().default(true),
  hsts: z.union([z.boolean(), z.number().int().min(0)]).default(false),
  https: z.boolean().default(true),
  email: z.string().optional(),
  upstreamWait: z.number().min(0).max(300).optional(),
  healthcheck: z.string().regex(/^\/[\x21-\x7e]{0,1023}$/, 'healthcheck must be a path such as /healthz').optional(),
  healthcheckInterval: z.number().min(0.1).max(3600).optional(),
  /** `dns-01` through the `dns:` provider covering the host (a wildcard host always uses it). */
  challenge: z.enum(['http-01', 'dns-01']).optional(),
  /** How padlock speaks to upstreams written `host:port`: http (default), https, or h2c (cleartext HTTP/2, gRPC). */
  proto: z.enum(['http', 'https', 'h2c']).optional(),
}).strict();

/**
 * Each key: its type, its default, and (in `describe`) its help text. The
 * flag is the kebab-case key, the env var PADLOCK_ + SNAKE_CASE key.
 */
export const runConfigSchema = z.object({
  httpPort: port('httpPort').default(80).describe('Port for HTTP: ACME challenges, redirects to HTTPS'),
  httpsPort: port('httpsPort').default(443).describe('Port for HTTPS'),
  bind: z.string().default('').describe('Address to listen on (default: all interfaces)'),
  server: z.url({ protocol: /^https?$/, error: 'server must be an http(s) URL of an ACME directory' }).optional().describe("ACME directory URL (default: Let's Encrypt production)"),
  staging: z.boolean().default(false).describe("Use Let's Encrypt's staging CA"),
  email: z.email({ error: 'email must be an email address' }).optional().describe('Contact email for the ACME account and alerts'),
  profile: z.string().regex(/^[A-Za-z0-9._-]{1,64}$/, 'profile must be a profile name such as "shortlived"').optional().describe('ACME profile to ask for when the CA offers it (labels may override with padlock.profile)'),
  agreeTos: z.boolean().default(false).describe("Agree to the CA's terms of service"),
  configDir: z.string().min(1).default('/etc/padlock').describe('Where certificates, accounts and state live'),
  trustedRoots: z.string().optional().describe('PEM file of extra trust anchors for verifying issued chains'),
  serverCa: z.string().optional().describe("PEM file trusted for the ACME server's own HTTPS (private CAs)"),
  docker: z.boolean().default(true).describe('Discover routes from Docker containers'),
  dockerHost: z.string().optional().describe('Docker endpoint (unix:///var/run/docker.sock, tcp://host:2376); default $DOCKER_HOST or the local socket'),
  exposedByDefault: z.boolean().default(true).describe('Route every container with a host label (false: only padlock.enable=true)'),
  adminListen: z.string().regex(/^(\[[0-9a-fA-F:]+\]|[^:\s]+):\d{1,5}$/, 'adminListen must be HOST:PORT').default('127.0.0.1:9180').describe('Admin API (status, health) address'),
  localSuffixes: z.array(z.string().min(1)).default(['localhost', 'internal', 'home.arpa']).describe('Name suffixes that get certificates from the local CA'),
  concurrency: z.number().int().min(1).max(100).default(4).describe('ACME orders in flight at once'),
  renewCron: z.string().refine(validCron, 'renewCron must be a cron expression such as "*/10 * * * *"').default('*/10 * * * *').describe('When to check every certificate (cron); padlock also wakes at each renewal time'),
  workers: z.number().int().min(1, 'workers must be at least 1').max(64, 'workers must be at most 64').default(1).describe('Processes serving :80 and :443 (node:cluster); 1 serves them in the main process'),
  drainSeconds: z.number().min(0).default(10).describe('On SIGTERM, seconds to let in-flight requests finish'),
  challenge: z.enum(['auto', 'http-01', 'tls-alpn-01'], { error: 'challenge must be http-01, tls-alpn-01 or auto' }).default('auto')
    .describe('ACME challenge: http-01 (port 80), tls-alpn-01 (port 443), or auto: http-01, then tls-alpn-01 for a name the CA could not reach on port 80'),
  http2: z.boolean().default(true).describe('Serve HTTP/2 on the HTTPS port (ALPN h2, then http/1.1 on the same port); false serves HTTP/1.1 only'),
  http2MaxConcurrentStreams: z.number().int().min(1, 'http2MaxConcurrentStreams must be at least 1').max(10_000, 'http2MaxConcurrentStreams must be at most 10000').default(250)
    .describe('HTTP/2: requests in flight at once on one connection'),
  http2MaxHeaderListSize: z.number().int().min(1024, 'http2MaxHeaderListSize must be at least 1024 bytes').max(1024 * 1024, 'http2MaxHeaderListSize must be at most 1048576 bytes').default(32 * 1024)
    .describe('HTTP/2: largest request head in bytes (name + value + 32 per field); a larger one is refused'),
  http2MaxSessionMemory: z.number().min(1, 'http2MaxSessionMemory must be at least 1 (MiB)').max(1024, 'http2MaxSessionMemory must be at most 1024 (MiB)').default(10)
    .describe('HTTP/2: MiB one connection may hold in buffers before new requests on it are refused'),
  http2IdleTimeout: z.number().min(1, 'http2IdleTimeout must be at least 1 second').max(86_400, 'http2IdleTimeout must be at most 86400 seconds').default(75)
    .describe('HTTP/2: seconds a connection with no request in flight stays open'),
  http2SettingsTimeout: z.number().min(1, 'http2SettingsTimeout must be at least 1 second').max(300, 'http2SettingsTimeout must be at most 300 seconds').default(10)
    .describe("HTTP/2: seconds a client has to acknowledge padlock's SETTINGS"),
  http2ResetBurst: z.number().int().min(1, 'http2ResetBurst must be at least 1').default(1000)
    .describe('HTTP/2: stream resets (RST_STREAM) a client may send at once before its connection is closed (Rapid Reset)'),
  http2ResetRate: z.number().int().min(1, 'http2ResetRate must be at least 1').default(33)
    .describe('HTTP/2: stream resets per second a client earns back'),
  tlsContextCache: z.number().int().min(1, 'tlsContextCache must be at least 1').max(1_000_000, 'tlsContextCache must be at most 1000000').default(DEFAULT_TLS_CONTEXT_CACHE)
    .describe('TLS contexts kept in memory per process, least recently used evicted first (each costs 35-70 KB; an evicted name is rebuilt on its next handshake)'),
  idleGc: z.boolean().default(true)
    .describe('After a busy spell, once a 5 s interval used under 2 % of a core, run one memory-reducing garbage collection in each process, which returns the young generation and freed pages to the system'),
  routeGrace: z.number().min(0, 'routeGrace must be 0 or more seconds').max(86_400, 'routeGrace must be at most 86400 seconds (a day)').default(300)
    .describe("Seconds a name keeps its certificate and route after its last container stopped (requests are held, then answered 503); 0 drops it at once"),
  upstreamWait: z.number().min(0, 'upstreamWait must be 0 or more seconds').max(300, 'upstreamWait must be at most 300 seconds').default(5)
    .describe('Seconds a request waits for an upstream to come up when none is up (labels may override with padlock.upstream-wait); 0 answers at once'),
  heldRequestsMax: z.number().int().min(1, 'heldRequestsMax must be at least 1').max(100_000, 'heldRequestsMax must be at most 100000').default(1000)
    .describe('Most requests held at once while waiting for an upstream (per process; one name may hold half of them); more get 503 at once'),
  storeLockTtl: z.number().int().min(5, 'storeLockTtl must be at least 5 seconds').max(3600, 'storeLockTtl must be at most 3600 seconds').default(60)
    .describe('Seconds a certificate lock in a shared store outlives a replica that died holding it (its holder renews it every sixth of that)'),
  storeAlertAfter: z.number().int().min(0).default(300).describe('Seconds a shared store (Redis) may stay unreachable before padlock alerts (it keeps serving meanwhile)'),
  logLevel: z.enum(['debug', 'info', 'warn', 'error']).default('info').describe('Log level'),
  logFormat: z.enum(['auto', 'json', 'pretty']).default('auto').describe('Log lines as JSON, readable text, or auto (readable when stderr is a terminal)'),
  allowUpstream: z.array(cidr).default([]).describe('CIDRs padlock may forward to although they are link-local or cloud metadata addresses, e.g. 169.254.10.0/24 (comma-separated)'),
  trustedProxies: z.array(cidr).default([]).describe("CIDRs of proxies in front of padlock whose X-Forwarded-*, X-Real-IP and Forwarded headers are kept (comma-separated); everyone else's are replaced"),
  sites: z.array(staticSiteSchema).default([]).describe('Static routes (config file only)'),
  dns: dnsConfigSchema.optional().describe('DNS-01 providers and the zones each covers (config file only)'),
}).extend(notifyConfigSchema.shape).extend(storeConfigSchema.shape).extend(companionConfigSchema.shape).extend(adminConfigSchema.shape).strict();

export type RunConfig = z.infer<typeof runConfigSchema>;
export type StaticSite = z.infer<typeof staticSiteSchema>;
export type RunConfigKey = keyof RunConfig;

/** The kind of value a key holds, for parsing flags and env strings. */
export function keyKind(key: RunConfigKey): 'number' | 'boolean' | 'list' | 'string' | 'object' {
  const def = runConfigSchema.shape[key];
  const inner = unwrap(def);
  if (inner instanceof z.ZodNumber) return 'number';
  if (inner instanceof z.ZodBoolean) return 'boolean';
  if (inner instanceof z.ZodArray) return key === 'sites' ? 'object' : 'list';
  if (inner instanceof z.ZodObject) return 'object';
  return 'string';
}

function unwrap(t: z.ZodType): z.ZodType {
  let cur: z.ZodType = t;
  while (cur instanceof z.ZodDefault || cur instanceof z.ZodOptional) cur = (cur as z.ZodDefault<z.ZodType>).unwrap() as z.ZodType;
  return cur;
}

export const envName = (key: string) => 'PADLOCK_' + key.replace(/[A-Z]/g, (c) => '_' + c).toUpperCase();
export const flagName = (key: string) => key.replace(/[A-Z]/g, (c) => '-' + c.toLowerCase());

/** Converts an env or flag string to the key's kind; leaves it as is (for the schema to reject) when it doesn't parse. */
export function fromString(key: RunConfigKey, raw: string): unknown {
  switch (keyKind(key)) {
    case 'number':
      return raw.trim() !== '' && Number.isFinite(Number(raw)) ? Number(raw) : raw;
    case 'boolean':
      return /^(1|true|yes|on)$/i.test(raw) ? true : /^(0|false|no|off)$/i.test(raw) ? false : raw;
    case 'list':
      return raw.split(',').map((s) => s.trim()).filter(Boolean);
    default:
      return raw;
  }
}

/**
 * Validates the merged layers. Every problem is reported in one
 * CONFIG_INVALID error, each with where the value came from.
 */
export function parseRunConfig(
  layers: { file?: Record<string, unknown>; fileName?: string; env?: Record<string, unknown>; flags?: Record<string, unknown> },
  /** The raw environment, for the secrets that never go through a flag (PADLOCK_STORE_KEY). */
  rawEnv: NodeJS.ProcessEnv = {},
): RunConfig {
  const origin = new Map<string, string>();
  const merged: Record<string, unknown> = {};
  const apply = (layer: Record<string, unknown> | undefined, name: string) => {
    for (const [k, v] of Object.entries(layer ?? {})) {
      if (v === undefined) continue;
      merged[k] = v;
      origin.set(k, name);
    }
  };
  apply(layers.file, layers.fileName ? `config file ${layers.fileName}` : 'config file');
  apply(layers.env, 'env');
  apply(layers.flags, 'flag');
  const result = runConfigSchema.safeParse(merged);
  if (result.success) {
    // Rules across several keys, which one schema field cannot express.
    const adminHost = /^\[?([^\]]*?)\]?:\d+$/.exec(result.data.adminListen)?.[1] ?? result.data.adminListen;
    const admin = adminAccessProblem(adminHost, result.data.adminToken ?? result.data.adminTokenFile);
    const cross = [...companionConfigProblems(result.data), ...storeConfigProblems(result.data, rawEnv), ...dnsConfigProblems(result.data.dns).map((p) => `${layers.fileName ? `config file ${layers.fileName}: ` : ''}${p}`), ...(admin ? [admin] : [])];
    if (cross.length) throw new PadlockError('CONFIG_INVALID', cross.length === 1 ? cross[0]! : `${cross.length} configuration problems:\n  - ${cross.join('\n  - ')}`, { details: { problems: cross } });
    return Object.freeze(result.data) as RunConfig;
  }
  const problems = result.error.issues.map((issue) => {
    const key = String(issue.path[0] ?? '');
    const from = origin.get(key);
    const where = from === 'env' ? envName(key) : from === 'flag' ? `--${flagName(key)}` : from ? `${from}: ${issue.path.join('.')}` : issue.path.join('.');
    const value = key && key in merged && issue.path.length === 1 ? shownValue(key, merged[key]) : '';
    if (issue.code === 'unrecognized_keys') return `${layers.fileName ? `config file ${layers.fileName}` : 'config'}: unknown key(s) ${issue.keys.join(', ')}`;
    return `${where || 'config'}: ${issue.message}${value}`;
  });
  throw new PadlockError('CONFIG_INVALID', problems.length === 1 ? problems[0]! : `${problems.length} configuration problems:\n  - ${problems.join('\n  - ')}`, {
    details: { problems },
  });
}

/** Reads the PADLOCK_* variables this schema knows. */
export function envLayer(env: NodeJS.ProcessEnv): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const key of Object.keys(runConfigSchema.shape) as RunConfigKey[]) {
    if (FILE_ONLY_KEYS.has(key)) continue;
    const raw = env[envName(key)];
    if (raw !== undefined && raw !== '') out[key] = fromString(key, raw);
  }
  return out;
}
