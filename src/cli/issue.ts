/**
 * `padlock issue`: obtain one certificate, certbot-style (`certbot certonly`).
 */
import type { CommandModule } from 'yargs';
import { isIP } from '../ip.js';
import { ipLineageName, normaliseNames } from '../config/names.js';
import { isValidLineageName, type LineageMeta } from '../store/store.js';
import { SUPPORTED_CURVES, SUPPORTED_RSA_SIZES } from '../tls/keys.js';
import { systemClock } from '../clock.js';
import { cliEnvironment } from '../config/cli-env.js';
import { isRedisStore } from '../store/store-config.js';
import type { ObtainReason } from '../certificates/engine.js';
import {
  Problems, withStoreOptions, withAcmeOptions, withChallengeOptions, resolveServer, checkEmail, checkEab,
  makeLogger, progressPrinter, reportError, output, openEngine, challengeFromArgs, type AcmeArgs, type ChallengeArgs, type StoreArgs,
} from './common.js';

interface IssueArgs extends AcmeArgs, ChallengeArgs, StoreArgs {
  domains: string[];
  'cert-name'?: string | undefined;
  'config-dir': string;
  json: boolean;
  'key-type': string;
  'elliptic-curve': string;
  'rsa-key-size': number;
  'reuse-key': boolean;
  'force-renewal': boolean;
  'ignore-rate-limit': boolean;
  'dry-run': boolean;
  'deploy-hook'?: string | undefined;
  'deploy-hook-timeout': number;
  profile?: string | undefined;
  'required-profile'?: string | undefined;
}

export const issueCommand: CommandModule<object, IssueArgs> = {
  command: 'issue',
  describe: 'Obtain a certificate for one or more names (like certbot certonly)',
  builder: (y) =>
    withChallengeOptions(withAcmeOptions(withStoreOptions(y)))
      .option('domains', { alias: ['d', 'domain'], type: 'string', array: true, demandOption: 'pass at least one -d NAME', describe: 'A name for the certificate; repeat for more (the first is the common name)' })
      .option('cert-name', { type: 'string', describe: 'Lineage name (default: the first domain)' })
      .option('key-type', { type: 'string', choices: ['ecdsa', 'rsa'], default: 'ecdsa', describe: 'Key type of the certificate' })
      .option('elliptic-curve', { type: 'string', choices: ['secp256r1', 'secp384r1', 'P-256', 'P-384'], default: 'secp256r1', describe: 'ECDSA curve' })
      .option('rsa-key-size', { type: 'number', default: 2048, describe: 'RSA key size (2048, 3072, 4096)' })
      .option('reuse-key', { type: 'boolean', default: false, describe: 'Keep the current private key when the lineage is issued again' })
      .option('force-renewal', { type: 'boolean', default: false, describe: 'Issue even if the current certificate for these names is not yet due' })
      .option('ignore-rate-limit', { type: 'boolean', default: false, describe: "Ask the CA even while it asked to wait (429/503 Retry-After) or padlock's rate-limit ledger says no. The CA will likely refuse again." })
      .option('dry-run', { type: 'boolean', default: false, describe: 'Do the whole flow against the CA, store nothing, run no hook' })
      .option('deploy-hook', { type: 'string', describe: 'Shell command run after success, with RENEWED_LINEAGE and RENEWED_DOMAINS set' })
      .option('deploy-hook-timeout', { type: 'number', default: 300, describe: 'Seconds the deploy hook may run before it and its whole process group are killed' })
      .option('profile', { type: 'string', describe: "ACME profile to ask for (e.g. shortlived); the CA's default, with a warning, when it doesn't offer it" })
      .option('required-profile', { type: 'string', describe: 'ACME profile that must be used; fail when the CA does not offer it' })
      .example('$0 issue -d example.com -d www.example.com --email me@example.com --agree-tos', 'standalone HTTP-01 on port 80')
      .example('$0 issue -d example.com --webroot -w /var/www/html --agree-tos', 'through an existing web server')
      .example("$0 issue -d '*.example.com' -d example.com --dns cloudflare --dns-credentials /etc/padlock/cloudflare.ini --agree-tos", 'a wildcard over DNS-01')
      .example('$0 issue -d example.com --standalone --preferred-challenges tls-alpn-01 --agree-tos', 'TLS-ALPN-01 on port 443 (port 80 closed)') as never,
  handler: async (args) => {
    try {
      await issue(args);
    } catch (err) {
      reportError(err, args.json);
    }
  },
};

const CURVES: Record<string, string> = { secp256r1: 'P-256', secp384r1: 'P-384', 'P-256': 'P-256', 'P-384': 'P-384' };

/** Validates every option at once and turns them into the lineage's metadata. */
function buildMeta(args: IssueArgs): { meta: Omit<LineageMeta, 'updatedAt'>; eab: { kid: string; hmacKey: string } | undefined } {
  const problems = new Problems();
  let domains: string[] = [];
  try {
    // Wildcards need DNS-01 (RFC 8555 section 7.1.3); IP addresses (RFC 8738) are validated over HTTP-01 or TLS-ALPN-01.
    domains = normaliseNames(args.domains.flatMap((d) => String(d).split(',')), { allowWildcard: args.dns !== undefined, allowIp: true });
  } catch (err) {
    problems.add((err as Error).message);
  }
  const server = resolveServer(args, problems);
  checkEmail(args.email, problems);
  const eab = checkEab(args, problems);
  // certbot's default name: the first domain, without a wildcard's "*." (an IPv6 address's colons become "-": ipLineageName).
  const name = (args['cert-name'] ?? ipLineageName((domains[0] ?? '').replace(/^\*\./, ''))).toLowerCase();
  if (args.dns !== undefined && domains.some((d) => isIP(d))) problems.add('an IP address cannot be validated over DNS-01 (RFC 8738 allows HTTP-01 and TLS-ALPN-01 only); issue it without --dns');
  if (domains.length) problems.check(isValidLineageName(name), `--cert-name "${args['cert-name']}" may hold only lowercase letters, digits, ".", "-" and "_"`);
  if (args['key-type'] === 'rsa') {
    problems.check((SUPPORTED_RSA_SIZES as readonly number[]).includes(args['rsa-key-size']), `--rsa-key-size ${args['rsa-key-size']} is not one of ${SUPPORTED_RSA_SIZES.join(', ')}`);
  }
  const curve = CURVES[args['elliptic-curve']] ?? 'P-256';
  problems.check((SUPPORTED_CURVES as readonly string[]).includes(curve), `--elliptic-curve ${args['elliptic-curve']} is not supported`);
  if (args['deploy-hook'] && isRedisStore({ store: args.store ?? cliEnvironment().store ?? '' })) {
    problems.add('--deploy-hook needs a folder store: a Redis store has no live folder for RENEWED_LINEAGE. Issue into a folder (--config-dir) on the host that runs the hook, or read the certificate from padlock run');
  }
  const challenge = challengeFromArgs(args, problems);
  for (const opt of ['profile', 'required-profile'] as const) {
    const v = args[opt];
    if (v !== undefined) problems.check(/^[A-Za-z0-9._-]{1,64}$/.test(v), `--${opt} "${v}" is not a profile name`);
  }
  problems.throwIfAny();
  const meta: Omit<LineageMeta, 'updatedAt'> = {
    name,
    domains,
    server,
    keyType: args['key-type'] === 'rsa' ? 'rsa' : 'ecdsa',
    ...(args['key-type'] === 'rsa' ? { rsaKeySize: args['rsa-key-size'] } : { ellipticCurve: curve }),
    reuseKey: args['reuse-key'],
    challenge,
    ...(args.email ? { email: args.email } : {}),
    ...(args['deploy-hook'] ? { deployHook: args['deploy-hook'] } : {}),
    ...(args.profile ? { profile: args.profile } : {}),
    ...(args['required-profile'] ? { requiredProfile: args['required-profile'] } : {}),
    ...(args['trusted-roots'] ? { trustedRoots: args['trusted-roots'] } : {}),
    ...(serverCaPath(args) ? { serverCa: serverCaPath(args) } : {}),
  };
  return { meta, eab };
}

async function issue(args: IssueArgs): Promise<void> {
  const { meta, eab } = buildMeta(args);
  const logger = makeLogger(args);
  const say = progressPrinter(args);
  const { engine, close } = await openEngine({
    store: args, logger, timeoutMs: args.timeout * 1000, serverCa: serverCaPath(args), hookTimeoutMs: args['deploy-hook-timeout'] * 1000,
  });
  try {
    // certbot's non-interactive default: keep a certificate for the same names that is not yet due.
    const existing = args['force-renewal'] || args['dry-run'] ? null : await engine.assess(meta.name);
    let reason: ObtainReason = args['force-renewal'] ? 'forced' : 'new';
    if (existing && !sameNames(existing.lineage.meta.domains, meta.domains)) reason = 'names-changed';
    else if (existing) {
      const decision = engine.decide(existing);
      reason = decision.reason;
      if (!decision.due) {
        output(args, { ok: true, action: 'kept', name: meta.name, domains: meta.domains, notAfter: existing.notAfter.toISOString(), renewAfter: decision.dueAt.toISOString(), fullchainPath: existing.lineage.paths?.fullchain },
          `Certificate ${meta.name} is not yet due for renewal (due ${decision.dueAt.toISOString()}); kept it. Pass --force-renewal to issue anyway.`);
        return;
      }
    }
    if (!args.quiet) process.stderr.write(`padlock: issuing ${meta.domains.join(', ')} from ${meta.server}${args['dry-run'] ? ' (dry run: nothing will be stored)' : ''}\n`);
    const result = await engine.obtain(meta, {
      reason,
      // The user asked for this issuance now: padlock's own backoff does not apply, the CA's waits do.
      forced: true,
      ignoreRateLimit: args['ignore-rate-limit'],
      dryRun: args['dry-run'],
      account: { agreeTos: args['agree-tos'], ...(eab ? { externalAccountBinding: eab } : {}) },
      onProgress: say,
    });
    const days = Math.floor((result.notAfter.getTime() - systemClock.now().getTime()) / 86_400_000);
    output(args, {
      ok: result.hookError === undefined, action: args['dry-run'] ? 'dry-run' : 'issued',
      name: result.name, domains: result.domains, version: result.version, notAfter: result.notAfter.toISOString(),
      ...(result.orderUrl ? { orderUrl: result.orderUrl } : {}),
      ...(result.paths ? { lineageDir: result.paths.dir, fullchainPath: result.paths.fullchain, privkeyPath: result.paths.privkey } : {}),
      ...(result.hookError ? { hookError: result.hookError.toJSON() } : {}),
    },
    args['dry-run']
      ? `The dry run succeeded: ${meta.domains.join(', ')} can be issued (nothing was stored).`
      : `Certificate ${result.name} issued for ${result.domains.join(', ')}, valid until ${result.notAfter.toISOString()} (${days} days).\n  fullchain: ${result.paths?.fullchain}\n  key:       ${result.paths?.privkey}`);
    if (result.hookError) reportError(result.hookError, false);
  } finally {
    await close();
  }
}

function serverCaPath(args: AcmeArgs): string | undefined {
  return args['server-ca'] ?? cliEnvironment().serverCa;
}

function sameNames(a: string[], b: string[]): boolean {
  return a.length === b.length && [...a].sort().join(',') === [...b].sort().join(',');
}
