/**
 * `padlock run`: the daemon. Every option comes from the one config schema:
 * flag > PADLOCK_* env var > config file > default, validated once.
 */
import type { CommandModule, Options } from 'yargs';
import { runConfigSchema, parseRunConfig, envLayer, flagName, envName, keyKind, fromString, FILE_ONLY_KEYS, type RunConfigKey, type RunConfig } from '../config/schema.js';
import { startDaemon, type Discovery } from '../main.js';
import { PadlockError, errorMessage } from '../errors.js';
import { reportError } from './common.js';
import { readConfigFile } from '../config/file.js';
import { createLogger } from '../log.js';
import { prettyWriter } from '../observe/pretty-log.js';
import { dnsSettingsFor } from '../config/dns-config.js';
import { upstreamGuardFor } from '../proxy/upstream-connect.js';

const KEYS = (Object.keys(runConfigSchema.shape) as RunConfigKey[]).filter((k) => !FILE_ONLY_KEYS.has(k));

function options(): Record<string, Options> {
  const out: Record<string, Options> = {
    config: { type: 'string', describe: 'YAML or JSON config file (also $PADLOCK_CONFIG)' },
  };
  for (const key of KEYS) {
    const kind = keyKind(key);
    const field = runConfigSchema.shape[key];
    const def = (field as unknown as { def?: { defaultValue?: unknown } }).def?.defaultValue;
    out[flagName(key)] = {
      // Strings for everything but booleans, converted by fromString, so "eighty" reaches the schema and is reported.
      type: kind === 'boolean' ? 'boolean' : 'string',
      describe: `${field.description ?? ''} [env ${envName(key)}]`,
      ...(def !== undefined && def !== '' ? { defaultDescription: JSON.stringify(def) } : {}),
    };
  }
  return out;
}

/** Builds the validated config from argv, env and the file. */
export async function loadRunConfig(argv: Record<string, unknown>, env: NodeJS.ProcessEnv): Promise<{ config: RunConfig; file?: string }> {
  const file = (argv['config'] as string | undefined) ?? (env['PADLOCK_CONFIG'] || undefined);
  const flags: Record<string, unknown> = {};
  for (const key of KEYS) {
    const v = argv[flagName(key)];
    if (v === undefined) continue;
    flags[key] = typeof v === 'string' ? fromString(key, v) : v;
  }
  const config = parseRunConfig({ ...(file ? { file: await readConfigFile(file), fileName: file } : {}), env: envLayer(env), flags }, env);
  return file ? { config, file } : { config };
}

export const runCommand: CommandModule<object, Record<string, unknown>> = {
  command: 'run',
  describe: 'Run the daemon: HTTPS reverse proxy for Docker containers with automatic certificates',
  builder: (y) => y.options(options()).strict() as never,
  handler: async (argv) => {
    try {
      const { config, file } = await loadRunConfig(argv, process.env);
      // Readable lines on a terminal, JSON lines otherwise (or as logFormat says). Redaction happens before either.
      const pretty = config.logFormat === 'pretty' || (config.logFormat === 'auto' && process.stderr.isTTY === true);
      const logger = createLogger({ level: config.logLevel, ...(pretty ? { write: prettyWriter(process.stderr) } : {}) });
      // dockerode (with ssh2, gRPC and protobuf: about 30 MB) is loaded only when Docker discovery is on.
      const discovery: Discovery | null = config.docker
        ? (await import('../docker/discovery.js')).dockerDiscovery({ ...(config.dockerHost ? { dockerHost: config.dockerHost } : {}), exposedByDefault: config.exposedByDefault, localSuffixes: config.localSuffixes, ...(config.email ? { defaultEmail: config.email } : {}), ...(config.profile ? { defaultProfile: config.profile } : {}), upstreamGuard: upstreamGuardFor(config), dnsCovers: (name: string) => dnsSettingsFor(config.dns, name) !== undefined, logger })
        : null;
      const daemon = await startDaemon(config, { discovery, logger, ...(file ? { configFile: file } : {}) });
      let stopping = false;
      const stop = (signal: string) => {
        if (stopping) return;
        stopping = true;
        process.stderr.write(`padlock: ${signal} received, draining connections (up to ${config.drainSeconds} s)\n`);
        daemon.stop().then(() => process.exit(0), (err: unknown) => {
          process.stderr.write(`padlock: stop failed: ${errorMessage(err)}\n`);
          process.exit(1);
        });
      };
      process.on('SIGTERM', () => stop('SIGTERM'));
      process.on('SIGINT', () => stop('SIGINT'));
    } catch (err) {
      reportError(err, false);
    }
  },
};
