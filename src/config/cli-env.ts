/**
 * The `PADLOCK_*` environment variables the one-shot commands read
 * (`issue`, `renew`, `revoke`, `certificates`, `import`, `status`, ...),
 * validated through the same schema as `padlock run`'s config
 * (config/schema.ts), once per process.
 */
import { runConfigSchema, envLayer } from './schema.js';
import { PadlockError } from '../errors.js';

const cliEnvSchema = runConfigSchema.pick({ configDir: true, serverCa: true, adminListen: true, adminToken: true, store: true, storePrefix: true, storeCa: true, storeKeyFile: true }).partial();

export interface CliEnvironment {
  /** `PADLOCK_CONFIG_DIR`. */
  configDir?: string;
  /** `PADLOCK_SERVER_CA`: a PEM file trusted for the ACME server's own HTTPS. */
  serverCa?: string;
  /** `PADLOCK_ADMIN_LISTEN`. */
  adminListen?: string;
  /** `PADLOCK_ADMIN_TOKEN`. Never printed. */
  adminToken?: string;
  /** `PADLOCK_STORE`: a folder or a Redis URL (holds a password: never printed; show the store's `location`). */
  store?: string;
  storePrefix?: string;
  storeCa?: string;
  storeKeyFile?: string;
}

/** Parses the variables; CONFIG_INVALID names every bad one (never a secret value). */
export function parseCliEnvironment(env: NodeJS.ProcessEnv): CliEnvironment {
  const layer = envLayer(env);
  const picked = Object.fromEntries(Object.entries(layer).filter(([k]) => k in cliEnvSchema.shape));
  const r = cliEnvSchema.safeParse(picked);
  if (!r.success) {
    // Never the rejected value: PADLOCK_STORE may hold a password.
    const problems = r.error.issues.map((i) => `PADLOCK_${String(i.path[0] ?? '').replace(/[A-Z]/g, (c) => '_' + c).toUpperCase()}: ${i.message}`);
    throw new PadlockError('CONFIG_INVALID', problems.join('; '), { details: { problems } });
  }
  const out: CliEnvironment = {};
  for (const [k, v] of Object.entries(r.data)) if (v !== undefined && v !== '') (out as Record<string, unknown>)[k] = v;
  return out;
}

let parsed: CliEnvironment | undefined;

/** The process's CLI environment, parsed on first use (the environment does not change while a command runs). */
export function cliEnvironment(): CliEnvironment {
  parsed ??= parseCliEnvironment(process.env);
  return parsed;
}
