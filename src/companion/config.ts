/**
 * The companion's settings: a zod fragment merged into the run config
 * schema, and the rules between its keys. Companion mode (companion.ts) is
 * on when `companionDir` is set.
 */
import { z } from 'zod';

/** What acme-companion runs in a one-container nginx-proxy: render the config again, then reload nginx. */
export const NGINX_PROXY_RELOAD = '/app/docker-entrypoint.sh /usr/local/bin/docker-gen /app/nginx.tmpl /etc/nginx/conf.d/default.conf; /usr/sbin/nginx -s reload';

/**
 * The companion's settings, to merge into the run config schema
 * (`runConfigSchema.extend(companionConfigSchema.shape)`). Flag = kebab-case
 * key, env var = `PADLOCK_` + SNAKE_CASE key. Companion mode is on when
 * `companionDir` is set.
 */
export const companionConfigSchema = z.object({
  companionDir: z.string().min(1, 'companionDir must not be empty').optional()
    .describe("Companion mode: also write every certificate as NAME.crt, NAME.key and NAME.chain.pem into this folder (nginx-proxy's /etc/nginx/certs)"),
  companionReload: z.enum(['none', 'exec', 'signal', 'command'], { error: 'companionReload must be one of none, exec, signal, command' }).default('none')
    .describe('How to reload nginx after certificates change: none, exec or signal (into labelled containers through the Docker API; needs Docker write access), command'),
  companionLabels: z.array(z.string().regex(/^[^=\s]+(=.*)?$/, 'companionLabels must be LABEL or LABEL=VALUE')).default(['padlock.nginx=true', 'com.github.nginx-proxy.nginx'])
    .describe('With companionReload=exec or signal: the running containers with any of these labels (LABEL or LABEL=VALUE, comma-separated)'),
  companionExec: z.string().min(1, 'companionExec must not be empty').default(NGINX_PROXY_RELOAD)
    .describe("With companionReload=exec: the shell command run in each labelled container (default: nginx-proxy's docker-gen render, then nginx -s reload)"),
  companionSignal: z.string().regex(/^SIG[A-Z0-9]+$/, 'companionSignal must be a signal name such as SIGHUP').default('SIGHUP')
    .describe('With companionReload=signal: the signal to send (nginx reloads on SIGHUP)'),
  companionCommand: z.string().min(1, 'companionCommand must not be empty').optional()
    .describe('With companionReload=command: the shell command that reloads nginx (e.g. "nginx -s reload")'),
  companionCommandTimeout: z.number().min(1, 'companionCommandTimeout must be at least 1 second').default(30)
    .describe('With companionReload=exec or command: seconds before the reload counts as failed (a command is killed)'),
  companionWebroot: z.string().min(1, 'companionWebroot must not be empty').optional()
    .describe("Answer HTTP-01 by writing challenge files under this document root (nginx-proxy's /usr/share/nginx/html), because nginx owns port 80"),
  companionDebounceMs: z.number().int().min(0, 'companionDebounceMs must be 0 or more').default(2000)
    .describe('Certificates written within this many milliseconds cause one reload'),
});

export type CompanionConfig = z.infer<typeof companionConfigSchema>;

/**
 * Cross-key rules the schema alone cannot carry; one message per problem.
 * Call after parsing, and report with the other config problems.
 */
export function companionConfigProblems(config: CompanionConfig): string[] {
  const problems: string[] = [];
  if (config.companionReload !== 'none' && !config.companionDir) problems.push(`companionReload=${config.companionReload} needs companionDir (--companion-dir), the folder nginx reads certificates from`);
  if (config.companionReload === 'command' && !config.companionCommand) problems.push('companionReload=command needs companionCommand (--companion-command), e.g. "nginx -s reload"');
  if (config.companionWebroot && !config.companionDir) problems.push('companionWebroot needs companionDir (--companion-dir)');
  if ((config.companionReload === 'signal' || config.companionReload === 'exec') && config.companionLabels.length === 0) problems.push(`companionReload=${config.companionReload} needs at least one label in companionLabels`);
  return problems;
}
