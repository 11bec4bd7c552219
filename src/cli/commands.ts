/**
 * The table of padlock's commands: what `padlock --help` lists for each, and
 * how to load its module when it runs (cli/index.ts). Loading nothing else
 * keeps `padlock --version` fast and keeps `padlock issue` from loading the
 * daemon. test/unit/cli-commands.test.ts keeps each entry equal to its
 * module's own command, aliases and description.
 */
import type { CommandModule } from 'yargs';

/** What `padlock --help` lists for a command, and how to load it. */
export interface CommandEntry {
  command: string;
  aliases?: string[];
  describe: string;
  load: () => Promise<CommandModule<object, never>>;
}

export const COMMANDS: CommandEntry[] = [
  { command: 'run', describe: 'Run the daemon: HTTPS reverse proxy for Docker containers with automatic certificates', load: async () => (await import('./run.js')).runCommand as never },
  { command: 'issue', describe: 'Obtain a certificate for one or more names (like certbot certonly)', load: async () => (await import('./issue.js')).issueCommand as never },
  { command: 'certificates', aliases: ['list'], describe: 'List stored certificates: names, expiry, days left, issuer, key type, paths', load: async () => (await import('./certificates.js')).certificatesCommand as never },
  { command: 'renew', describe: 'Renew every certificate that is due (safe to run from cron as often as you like)', load: async () => (await import('./renew.js')).renewCommand as never },
  { command: 'revoke', describe: "Revoke a certificate's current version at the CA", load: async () => (await import('./revoke.js')).revokeCommand as never },
  { command: 'delete', describe: 'Delete a certificate lineage from the store (it is not revoked)', load: async () => (await import('./delete.js')).deleteCommand as never },
  { command: 'verify', describe: 'Check a certificate chain, key and names as a browser would (WebPKI rules; exit 0 valid, 1 invalid)', load: async () => (await import('./verify.js')).verifyCommand as never },
  { command: 'check <target>', describe: 'Connect to a TLS server and verify the chain it sends (exit 0 ok, 1 invalid/unreachable, 2 expiring soon)', load: async () => (await import('./check.js')).checkCommand as never },
  { command: 'trust', describe: 'Print the local CA root (for *.localhost and other local names), the names it can sign, and how to trust it', load: async () => (await import('./trust.js')).trustCommand as never },
  { command: 'notify', describe: 'Email and webhook notifications (padlock notify test)', load: async () => (await import('./notify.js')).notifyCommand as never },
  { command: 'import <source> <path>', describe: "Import certificates from Traefik's acme.json or certbot's /etc/letsencrypt, so they keep serving without new orders", load: async () => (await import('./import.js')).importCommand as never },
  { command: 'status', describe: "Show a running daemon's routes, certificates and problems (from its admin API)", load: async () => (await import('./status.js')).statusCommand as never },
  { command: 'store <command>', describe: 'Manage the certificate store (copy between a folder and Redis)', load: async () => (await import('./store.js')).storeCommand as never },
];

/**
 * The command modules to load for `argv`: every command named anywhere in it
 * (almost always one). A command that is not named cannot be the one yargs
 * runs, so it is registered from the table only, for the help listing.
 */
export function named(argv: string[]): Set<CommandEntry> {
  const words = new Set(argv.slice(0, argv.includes('--') ? argv.indexOf('--') : argv.length));
  return new Set(COMMANDS.filter((e) => words.has(e.command.split(' ')[0]!) || e.aliases?.some((a) => words.has(a))));
}

