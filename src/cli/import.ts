/**
 * `padlock import`: take over certificates another ACME client obtained, so
 * they keep serving from padlock's store without a new order.
 *
 *   padlock import traefik ACME_JSON [--resolver NAME]
 *   padlock import certbot LETSENCRYPT_DIR [--cert-name NAME]
 *
 * This file is the command: it checks the flags, hands them to the import
 * engine (import/engine.ts, which documents the checks, the metadata and the
 * account) and prints its report.
 */
import type { CommandModule } from 'yargs';
import { cliEnvironment } from '../config/cli-env.js';
import { PadlockError } from '../errors.js';
import { LETSENCRYPT_STAGING } from '../acme/directories.js';
import { runImport, type ImportReport, type ImportRequest } from '../import/engine.js';
import { openStore, output, reportError, withStoreOptions } from './common.js';

/** The command's flags, as yargs parses them. */
export interface ImportArgs {
  source: string;
  path: string;
  'config-dir': string;
  json: boolean;
  resolver?: string | undefined;
  'cert-name'?: string | undefined;
  server?: string | undefined;
  staging: boolean;
  email?: string | undefined;
  account: boolean;
  'per-name': boolean;
  replace: boolean;
  'dry-run': boolean;
  'allow-untrusted': boolean;
  'trusted-roots'?: string | undefined;
  'server-ca'?: string | undefined;
  'http-01-port': number;
  'http-01-address'?: string | undefined;
  webroot?: boolean | undefined;
  'webroot-path'?: string | undefined;
  quiet: boolean;
}

/**
 * Turns the flags into an import request. Throws CONFIG_INVALID naming every
 * flag problem at once (flags that contradict each other, a bad URL or port).
 */
export function importRequestFromArgs(args: ImportArgs): ImportRequest {
  const problems: string[] = [];
  if (args.server && args.staging) problems.push('--server and --staging both name a CA; pass only one');
  if (args.server) {
    try {
      new URL(args.server);
    } catch {
      problems.push(`--server "${args.server}" is not a URL`);
    }
  }
  if (args.source === 'traefik' && args['cert-name']) problems.push('--cert-name is for certbot imports; for Traefik use --resolver');
  if (args.source === 'certbot' && args.resolver) problems.push('--resolver is for Traefik imports');
  if (args.webroot && !args['webroot-path']) problems.push('--webroot needs -w DIR');
  const port = args['http-01-port'];
  if (!(Number.isInteger(port) && port > 0 && port < 65536)) problems.push(`--http-01-port ${port} is not a port (1-65535)`);
  if (problems.length) throw new PadlockError('CONFIG_INVALID', problems.join('; '), { details: { problems } });
  return {
    source: args.source,
    path: args.path,
    resolver: args.resolver,
    certName: args['cert-name'],
    server: args.server ?? (args.staging ? LETSENCRYPT_STAGING : undefined),
    email: args.email,
    account: args.account,
    perName: args['per-name'],
    replace: args.replace,
    dryRun: args['dry-run'],
    allowUntrusted: args['allow-untrusted'],
    trustedRoots: args['trusted-roots'],
    serverCa: args['server-ca'] ?? cliEnvironment().serverCa,
    challenge: args['webroot-path']
      ? { type: 'webroot', webroot: args['webroot-path'] }
      : { type: 'standalone', port, ...(args['http-01-address'] ? { address: args['http-01-address'] } : {}) },
  };
}

/** The human report: one line per result, warnings under it, then the summary line. */
export function formatImportReport(r: ImportReport): string {
  const lines: string[] = [];
  for (const x of r.results) {
    const what = x.action === 'would-import' ? 'would import' : x.action;
    if (x.action === 'skipped') lines.push(`  ${what.padEnd(12)} ${x.name}: ${x.reason} [${x.code}]`);
    else {
      const days = x.notAfter ? Math.floor((Date.parse(x.notAfter) - Date.now()) / 86_400_000) : undefined;
      lines.push(`  ${what.padEnd(12)} ${x.name} (${x.domains.join(', ')}), valid until ${x.notAfter}${days !== undefined ? ` (${days} days)` : ''}${x.action === 'unchanged' ? ': already in the store' : ''}`);
    }
    for (const w of x.warnings) lines.push(`  ${'warning'.padEnd(12)} ${x.name}: ${w}`);
  }
  if (r.account) {
    const a = r.account;
    lines.push(`  ${'account'.padEnd(12)} ${a.action === 'imported' || a.action === 'would-import' ? `${a.action === 'imported' ? 'imported' : 'would import'} ${a.accountUrl} for ${a.server}` : `${a.action}: ${a.reason}`}`);
  }
  const s = r.summary;
  const verb = r.dryRun ? 'Would import' : 'Imported';
  lines.push(`${verb} ${s.imported} of ${s.total} certificate${s.total === 1 ? '' : 's'} into ${r.configDir} (${s.unchanged} already there, ${s.skipped} skipped)${r.dryRun ? '; dry run: nothing was stored' : ''}.`);
  return lines.join('\n');
}

/** `padlock import`: exit 0 when nothing was skipped, 1 when a certificate was skipped or the import failed, 64 on bad usage. */
export const importCommand: CommandModule<object, ImportArgs> = {
  command: 'import <source> <path>',
  describe: "Import certificates from Traefik's acme.json or certbot's /etc/letsencrypt, so they keep serving without new orders",
  builder: (y) =>
    withStoreOptions(y)
      .positional('source', { type: 'string', choices: ['traefik', 'certbot'], describe: 'What wrote the certificates' })
      .positional('path', { type: 'string', describe: "Traefik's acme.json, or certbot's config folder (/etc/letsencrypt)" })
      .option('resolver', { type: 'string', describe: 'Traefik: import only this certificate resolver' })
      .option('cert-name', { type: 'string', describe: 'certbot: import only this lineage' })
      .option('server', { type: 'string', describe: "ACME directory URL to renew from (default: certbot's renewal conf; for Traefik the account's CA, else Let's Encrypt)" })
      .option('staging', { type: 'boolean', default: false, describe: "Renew from Let's Encrypt's staging CA" })
      .option('email', { alias: 'm', type: 'string', describe: 'Contact email stored with the imported lineages' })
      .option('account', { type: 'boolean', default: true, describe: "Traefik: import its ACME account for that CA when padlock has none (--no-account to skip)" })
      .option('per-name', { type: 'boolean', default: false, describe: 'Store the certificate once per DNS name on it (what padlock run serves) instead of once per certificate' })
      .option('replace', { type: 'boolean', default: false, describe: 'Replace a lineage of the same name that holds another certificate' })
      .option('dry-run', { type: 'boolean', default: false, describe: 'Check everything, store nothing' })
      .option('allow-untrusted', { type: 'boolean', default: false, describe: 'Import a certificate whose chain does not build to a trusted root, with a warning' })
      .option('trusted-roots', { type: 'string', describe: 'PEM file of extra trust anchors (a private CA), added to the system store' })
      .option('server-ca', { type: 'string', describe: "PEM file trusted for the ACME server's HTTPS, stored for renewals" })
      .option('http-01-port', { type: 'number', default: 80, describe: 'Traefik: port of the standalone HTTP-01 server for renewals' })
      .option('http-01-address', { type: 'string', describe: 'Traefik: address of the standalone HTTP-01 server' })
      .option('webroot', { type: 'boolean', describe: 'Traefik: renew through an existing web server (-w)' })
      .option('webroot-path', { alias: 'w', type: 'string', describe: 'Traefik: the document root for --webroot' })
      .option('quiet', { alias: 'q', type: 'boolean', default: false, describe: 'Print problems only' })
      .example('$0 import traefik /srv/traefik/acme.json --resolver letsencrypt', 'take over what Traefik obtained')
      .example('$0 import certbot /etc/letsencrypt --dry-run', 'check every certbot lineage, store nothing') as never,
  handler: async (args) => {
    try {
      const report = await runImport(importRequestFromArgs(args), { openStore: () => openStore(args) });
      if (args.json) process.stdout.write(JSON.stringify(report, null, 2) + '\n');
      else if (!args.quiet || !report.ok) output({ json: false }, {}, formatImportReport(report));
      if (!report.ok) process.exitCode = 1;
    } catch (err) {
      reportError(err, args.json, err instanceof PadlockError && err.code === 'CONFIG_INVALID' ? 64 : 1);
    }
  },
};
