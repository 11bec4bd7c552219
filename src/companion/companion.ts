/**
 * Companion mode: padlock as the certificate companion of an existing
 * nginx-proxy (the job acme-companion does).
 *
 * padlock writes every certificate into a folder shared with nginx
 * (`companionDir`, nginx-proxy's `/etc/nginx/certs`) in exactly the layout
 * nginx-proxy reads, then, if asked, reloads nginx:
 *
 *   NAME.crt        the full chain (leaf + intermediates), 0644
 *   NAME.key        the private key, 0600
 *   NAME.chain.pem  the intermediates only (OCSP stapling), 0644
 *
 * plus, for every other DNS name on the certificate, `OTHER.crt`,
 * `OTHER.key` and `OTHER.chain.pem` as relative symlinks to the NAME files,
 * because nginx-proxy looks certificates up by `VIRTUAL_HOST` (acme-companion
 * makes the same links). Wildcard names get no link.
 *
 * **The key is 0600, owned by the user padlock runs as.** nginx can still
 * read it: nginx-proxy's nginx master process runs as root and loads
 * certificates and keys before its workers drop privileges, and root reads
 * any file. An nginx whose master does not run as root needs the key owned by
 * its user instead (run padlock as that user).
 *
 * Every file is written atomically (temp file, fsync, rename, fsync of the
 * folder), so nginx never reads half a file. A file whose content did not
 * change is not rewritten, and when nothing changed nginx is not reloaded.
 * The three files of one certificate are replaced one after another, never
 * between a reload: the reload comes after all of them.
 *
 * **Reloading nginx is opt-in**, one of:
 * - `exec`: run a command inside every running container that carries one of
 *   the configured labels (default `padlock.nginx=true` or
 *   `com.github.nginx-proxy.nginx`, any value), through the Docker API. The
 *   default command is acme-companion's for the nginx-proxy image: re-render
 *   the nginx config with docker-gen (nginx-proxy only enables HTTPS for a
 *   name whose `NAME.crt` existed when it rendered) and `nginx -s reload`.
 *   Use this with the one-container `nginxproxy/nginx-proxy` image: do not
 *   signal it, its PID 1 (forego) stops on SIGHUP.
 * - `signal`: send a signal (default `SIGHUP`) through the Docker API to every
 *   labelled container. Right for the official `nginx` image (SIGHUP is
 *   nginx's reload) and for a separate docker-gen container (SIGHUP makes it
 *   render again and notify nginx), as in nginx-proxy's three-container setup.
 * - `command`: run a shell command (`/bin/sh -c`) where padlock runs, killed
 *   after a timeout; for example `nginx -s reload` when padlock shares nginx's
 *   host.
 *
 * **`exec` and `signal` are the only padlock features that need Docker write
 * access** (`POST /containers/{id}/exec` and `/exec/{id}/start`, or
 * `POST /containers/{id}/kill`). Everything else only lists, inspects and
 * watches events, so a read-only socket proxy suffices. For these reloads
 * give padlock a socket that allows those calls (or the Docker socket
 * itself, which is as powerful as root on the Docker host).
 *
 * Reloads are debounced: certificates written within `debounceMs` of each
 * other (a start, several renewals at once) cause one reload.
 *
 * Errors (a folder that cannot be written, Docker unreachable, a failing
 * command) are logged, counted in `status()` and emitted as events; they are
 * never thrown into the certificate path: `onCertificate` always resolves.
 */
import { EventEmitter } from 'node:events';
import { spawn } from 'node:child_process';
import { lstat, readFile, readlink, rename, symlink, unlink } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import Docker from 'dockerode';
import { z } from 'zod';
import { fsyncDir, writeFileAtomic, mkdirPrivate } from '../store/atomic.js';
import { parseDockerHost } from '../docker/client.js';
import { errorMessage } from '../errors.js';
import type { Logger } from '../log.js';
import { silentLogger } from '../log.js';
import type { CertStore, Lineage, LineageMeta } from '../store/store.js';
import { WebrootResponder, type ChallengeResponder } from '../acme/http01.js';
import { LOCAL_ROOT_SERVER } from '../tls/local-ca.js';

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

/** One certificate to hand to nginx. */
export interface CompanionCertificate {
  /** The lineage name; the files are NAME.crt, NAME.key, NAME.chain.pem. */
  name: string;
  /** Every DNS name on the certificate; names other than `name` get symlinks. */
  domains: string[];
  /** Leaf + intermediates. */
  fullchainPem: string;
  keyPem: string;
  /** Intermediates only. */
  chainPem: string;
  /** The leaf only (not written: nginx-proxy does not read it; kept for hooks). */
  certPem?: string;
}

/** The Docker calls `exec` and `signal` reloads need. */
export interface ReloadDocker {
  /** Running containers carrying `label` (`KEY` or `KEY=VALUE`). */
  listByLabel(label: string): Promise<Array<{ id: string; name: string }>>;
  kill(id: string, signal: string): Promise<void>;
  /** Runs `cmd` in the container; resolves with its exit code and (the end of) its output; rejects after `timeoutMs`. */
  exec(id: string, cmd: string[], timeoutMs: number): Promise<{ exitCode: number | null; output: string }>;
}

export type ReloadMode =
  | { kind: 'none' }
  | { kind: 'exec'; labels: string[]; command: string; timeoutMs: number; docker: ReloadDocker }
  | { kind: 'signal'; labels: string[]; signal: string; docker: ReloadDocker }
  | { kind: 'command'; command: string; timeoutMs: number };

export interface CompanionOptions {
  /** The folder shared with nginx. Created 0700 when missing (nginx-proxy's master runs as root and reads it). */
  dir: string;
  reload: ReloadMode;
  /** Default 2000 ms. */
  debounceMs?: number;
  logger?: Logger;
  now?: () => Date;
}

export interface ReloadOutcome {
  at: string;
  ok: boolean;
  /** For `signal`: the containers signalled (name). For `command`: the command. */
  targets: string[];
  /** Why it failed (or, with ok, a note such as "no container carries the labels"). */
  error?: string;
}

export interface CompanionStatus {
  dir: string;
  reload: ReloadMode['kind'];
  written: number;
  writeErrors: number;
  lastWrite?: { name: string; at: string; changed: boolean };
  lastWriteError?: { name: string; at: string; error: string };
  reloads: number;
  reloadErrors: number;
  lastReload?: ReloadOutcome;
  reloadPending: boolean;
}

export interface CompanionEvents {
  written: [{ name: string; files: string[]; changed: boolean }];
  write_failed: [{ name: string; error: string }];
  reloaded: [ReloadOutcome];
  reload_failed: [ReloadOutcome];
}

/** What `onCertificate` resolves with. It never rejects. */
export interface CompanionWriteResult {
  name: string;
  ok: boolean;
  /** Paths written or already up to date. */
  files: string[];
  changed: boolean;
  error?: string;
}

const NAME_OK = /^[a-z0-9][a-z0-9._-]{0,252}$/;

export class Companion extends EventEmitter<CompanionEvents> {
  private readonly log: Logger;
  private readonly debounceMs: number;
  private readonly now: () => Date;
  private timer: NodeJS.Timeout | undefined;
  private reloading: Promise<void> | undefined;
  private wantAnother = false;
  private closed = false;
  private dirReady: Promise<void> | undefined;
  private readonly stats: Omit<CompanionStatus, 'dir' | 'reload' | 'reloadPending'> = { written: 0, writeErrors: 0, reloads: 0, reloadErrors: 0 };

  constructor(private readonly opts: CompanionOptions) {
    super();
    this.log = (opts.logger ?? silentLogger).child({ component: 'companion' });
    this.debounceMs = opts.debounceMs ?? 2000;
    this.now = opts.now ?? (() => new Date());
  }

  /**
   * Writes one certificate for nginx and schedules a reload when anything
   * changed. Always resolves; a failure is logged, emitted and returned.
   */
  async onCertificate(cert: CompanionCertificate): Promise<CompanionWriteResult> {
    const name = cert.name;
    try {
      if (!NAME_OK.test(name) || name.includes('..')) throw new Error(`"${name}" is not a usable file name`);
      await this.ensureDir();
      const dir = this.opts.dir;
      const files: string[] = [];
      let changed = false;
      const put = async (file: string, data: string, mode: number) => {
        const path = join(dir, file);
        files.push(path);
        if (await sameFile(path, data, mode)) return;
        await writeFileAtomic(path, data, { mode });
        changed = true;
      };
      // Key first: a reader that catches the pair mid-way sees the new key with the old
      // certificate for a moment; nginx refuses that pair on reload and keeps serving the
      // old configuration, and the reload that follows these writes loads the new pair.
      await put(`${name}.key`, cert.keyPem, 0o600);
      await put(`${name}.crt`, cert.fullchainPem, 0o644);
      await put(`${name}.chain.pem`, cert.chainPem, 0o644);
      for (const other of cert.domains) {
        const alias = other.toLowerCase();
        if (alias === name || alias.startsWith('*.') || !NAME_OK.test(alias) || alias.includes('..')) continue;
        for (const ext of ['crt', 'key', 'chain.pem']) {
          const path = join(dir, `${alias}.${ext}`);
          files.push(path);
          if (await linkTo(path, `${name}.${ext}`)) changed = true;
        }
      }
      if (changed) await fsyncDir(dir);
      this.stats.written += 1;
      this.stats.lastWrite = { name, at: this.now().toISOString(), changed };
      this.log.info(changed ? 'wrote certificate for nginx' : 'certificate for nginx already up to date', { name, dir });
      this.emit('written', { name, files, changed });
      if (changed) this.scheduleReload();
      return { name, ok: true, files, changed };
    } catch (err) {
      const error = errorMessage(err);
      this.stats.writeErrors += 1;
      this.stats.lastWriteError = { name, at: this.now().toISOString(), error };
      this.log.error('could not write certificate for nginx; nginx keeps the previous files', { name, dir: this.opts.dir, error });
      this.emit('write_failed', { name, error });
      return { name, ok: false, files: [], changed: false, error };
    }
  }

  /** Runs a pending reload now and resolves when every reload in flight is done. */
  async flush(): Promise<void> {
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = undefined;
      this.startReload();
    }
    while (this.reloading) await this.reloading;
  }

  /** Flushes a pending reload (bounded by the reload's own timeouts) and stops scheduling new ones. */
  async close(): Promise<void> {
    await this.flush();
    this.closed = true;
  }

  status(): CompanionStatus {
    return { dir: this.opts.dir, reload: this.opts.reload.kind, ...this.stats, reloadPending: this.timer !== undefined || this.reloading !== undefined };
  }

  private ensureDir(): Promise<void> {
    this.dirReady ??= (async () => {
      const st = await lstat(this.opts.dir).catch(() => null);
      if (st === null) {
        // A folder we create ourselves; nginx (root) reads it anyway, but keep it private.
        await mkdirPrivate(this.opts.dir);
      } else if (!st.isDirectory()) {
        throw new Error(`${this.opts.dir} exists and is not a folder`);
      }
    })().catch((err: unknown) => {
      this.dirReady = undefined;
      throw err;
    });
    return this.dirReady;
  }

  private scheduleReload(): void {
    if (this.opts.reload.kind === 'none' || this.closed) return;
    if (this.reloading) {
      // Files changed while a reload runs: that reload may have read the old ones.
      this.wantAnother = true;
      return;
    }
    if (this.timer) return; // joins the reload already scheduled
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.startReload();
    }, this.debounceMs);
    this.timer.unref();
  }

  private startReload(): void {
    if (this.reloading) {
      this.wantAnother = true;
      return;
    }
    this.reloading = this.reloadOnce()
      .catch(() => undefined)
      .finally(() => {
        this.reloading = undefined;
        if (this.wantAnother && !this.closed) {
          this.wantAnother = false;
          this.scheduleReload();
        }
      });
  }

  private async reloadOnce(): Promise<void> {
    const mode = this.opts.reload;
    const at = this.now().toISOString();
    let outcome: ReloadOutcome;
    try {
      if (mode.kind === 'signal' || mode.kind === 'exec') {
        const seen = new Map<string, string>();
        for (const label of mode.labels) for (const c of await mode.docker.listByLabel(label)) seen.set(c.id, c.name);
        if (seen.size === 0) {
          outcome = { at, ok: false, targets: [], error: `no running container carries any of the labels ${mode.labels.join(', ')}; label your nginx container padlock.nginx=true` };
        } else {
          const failed: string[] = [];
          for (const [id, name] of seen) {
            if (mode.kind === 'signal') {
              await mode.docker.kill(id, mode.signal).catch((e: unknown) => failed.push(`${name}: ${errorMessage(e)}`));
            } else {
              await mode.docker.exec(id, ['/bin/sh', '-c', mode.command], mode.timeoutMs).then(
                (r) => {
                  if (r.exitCode !== 0) failed.push(`${name}: exit status ${r.exitCode ?? 'unknown'}${r.output.trim() ? `: ${r.output.trim().split('\n').pop()}` : ''}`);
                },
                (e: unknown) => failed.push(`${name}: ${errorMessage(e)}`),
              );
            }
          }
          const what = mode.kind === 'signal' ? `send ${mode.signal} to` : 'run the reload command in';
          outcome = failed.length === 0
            ? { at, ok: true, targets: [...seen.values()] }
            : { at, ok: false, targets: [...seen.values()], error: `could not ${what} ${failed.join('; ')}` };
        }
      } else if (mode.kind === 'command') {
        await runCommand(mode.command, mode.timeoutMs);
        outcome = { at, ok: true, targets: [mode.command] };
      } else {
        return;
      }
    } catch (err) {
      outcome = { at, ok: false, targets: mode.kind === 'command' ? [mode.command] : [], error: errorMessage(err) };
    }
    this.stats.reloads += 1;
    this.stats.lastReload = outcome;
    if (outcome.ok) {
      this.log.info('reloaded nginx', { how: mode.kind, targets: outcome.targets });
      this.emit('reloaded', outcome);
    } else {
      this.stats.reloadErrors += 1;
      this.log.error('could not reload nginx; it keeps serving the certificates it loaded before', { how: mode.kind, error: outcome.error });
      this.emit('reload_failed', outcome);
    }
  }
}

/** True when `path` is a regular file with exactly `data` and `mode` (so it need not be rewritten). */
async function sameFile(path: string, data: string, mode: number): Promise<boolean> {
  try {
    const st = await lstat(path);
    if (!st.isFile() || (st.mode & 0o777) !== mode) return false;
    return (await readFile(path, 'utf8')) === data;
  } catch {
    return false;
  }
}

/** Makes `path` a symlink to `target` (relative), atomically; false when it already was. */
async function linkTo(path: string, target: string): Promise<boolean> {
  if (await readlink(path).then((t) => t === target, () => false)) return false;
  const temp = `${path}.tmp-${randomBytes(6).toString('hex')}`;
  await symlink(target, temp);
  try {
    await rename(temp, path);
  } catch (err) {
    await unlink(temp).catch(() => undefined);
    throw err;
  }
  return true;
}

/** Runs `/bin/sh -c command` in its own process group; kills the group after `timeoutMs`. */
function runCommand(command: string, timeoutMs: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn('/bin/sh', ['-c', command], { stdio: ['ignore', 'ignore', 'pipe'], detached: true });
    let stderr = '';
    child.stderr?.setEncoding('utf8').on('data', (d: string) => {
      if (stderr.length < 4000) stderr += d;
    });
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      try {
        process.kill(-child.pid!, 'SIGKILL');
      } catch {
        /* gone */
      }
    }, timeoutMs);
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      if (timedOut) return reject(new Error(`reload command did not finish within ${timeoutMs / 1000} s and was killed: ${command}`));
      if (code === 0) return resolve();
      const why = stderr.trim().split('\n').pop() ?? '';
      reject(new Error(`reload command failed (${code !== null ? `exit status ${code}` : `signal ${signal}`}): ${command}${why ? `: ${why}` : ''}`));
    });
  });
}

/**
 * The dockerode adapter for `signal` reloads. Each call is bounded by
 * `timeoutMs` (default 10 s).
 */
export function createReloadDocker(opts: { dockerHost?: string; env?: Record<string, string | undefined>; timeoutMs?: number } = {}): ReloadDocker {
  const docker = new Docker(parseDockerHost(opts.dockerHost, opts.env ?? process.env) as Docker.DockerOptions);
  const timeoutMs = opts.timeoutMs ?? 10_000;
  return {
    listByLabel: async (label) => {
      const list = await docker.listContainers({ filters: { label: [label] }, abortSignal: AbortSignal.timeout(timeoutMs) } as Docker.ContainerListOptions);
      return list.map((c) => ({ id: c.Id, name: (c.Names?.[0] ?? c.Id.slice(0, 12)).replace(/^\//, '') }));
    },
    kill: async (id, signal) => {
      await docker.getContainer(id).kill({ signal, abortSignal: AbortSignal.timeout(timeoutMs) } as object);
    },
    exec: async (id, cmd, execTimeoutMs) => {
      const abort = AbortSignal.timeout(execTimeoutMs);
      const ex = await docker.getContainer(id).exec({ Cmd: cmd, AttachStdout: true, AttachStderr: true, abortSignal: abort } as Docker.ExecCreateOptions);
      const stream = await ex.start({ hijack: true, stdin: false, abortSignal: abort } as Docker.ExecStartOptions);
      let output = '';
      await new Promise<void>((resolveRun, rejectRun) => {
        const timer = setTimeout(() => {
          (stream as { destroy?: () => void }).destroy?.();
          rejectRun(new Error(`the reload command did not finish within ${execTimeoutMs / 1000} s`));
        }, execTimeoutMs);
        // The stream multiplexes stdout and stderr with 8-byte frame headers; only the text is kept, for messages.
        stream.on('data', (chunk: Buffer) => {
          output = (output + chunk.toString('utf8').replace(/[\x00-\x08]/g, '')).slice(-2000);
        });
        stream.on('end', () => { clearTimeout(timer); resolveRun(); });
        stream.on('close', () => { clearTimeout(timer); resolveRun(); });
        stream.on('error', (e: Error) => { clearTimeout(timer); rejectRun(e); });
      });
      const info = await ex.inspect({ abortSignal: AbortSignal.timeout(timeoutMs) } as object);
      return { exitCode: info.ExitCode ?? null, output };
    },
  };
}

/** Builds a Companion from the parsed config, or null when companion mode is off (no companionDir). */
export function companionFromConfig(config: CompanionConfig & { dockerHost?: string | undefined }, logger?: Logger): Companion | null {
  if (!config.companionDir) return null;
  const docker = () => createReloadDocker(config.dockerHost ? { dockerHost: config.dockerHost } : {});
  const reload: ReloadMode =
    config.companionReload === 'exec'
      ? { kind: 'exec', labels: config.companionLabels, command: config.companionExec, timeoutMs: config.companionCommandTimeout * 1000, docker: docker() }
      : config.companionReload === 'signal'
      ? { kind: 'signal', labels: config.companionLabels, signal: config.companionSignal, docker: docker() }
      : config.companionReload === 'command'
        ? { kind: 'command', command: config.companionCommand ?? 'true', timeoutMs: config.companionCommandTimeout * 1000 }
        : { kind: 'none' };
  return new Companion({ dir: config.companionDir, reload, debounceMs: config.companionDebounceMs, ...(logger ? { logger } : {}) });
}

/**
 * In companion mode nginx owns port 80, so HTTP-01 is answered with files in
 * the document root nginx-proxy serves `/.well-known/acme-challenge/` from
 * (`/usr/share/nginx/html`, shared with padlock as acme-companion shares it).
 * Returns the responder for the certificate manager (prepared: the folder is
 * writable, or CHALLENGE_WEBROOT_UNWRITABLE) and the challenge to record in
 * lineage metadata; undefined when `companionWebroot` is not set.
 */
export async function companionChallenge(config: Pick<CompanionConfig, 'companionWebroot'>): Promise<{ responder: ChallengeResponder; challenge: LineageMeta['challenge'] } | undefined> {
  if (!config.companionWebroot) return undefined;
  const responder = new WebrootResponder(config.companionWebroot);
  await responder.prepare();
  return { responder, challenge: { type: 'webroot', webroot: config.companionWebroot } };
}

/** The companion's view of a stored lineage. */
export function lineageToCompanion(lineage: Lineage): CompanionCertificate {
  return {
    name: lineage.meta.name,
    domains: lineage.meta.domains,
    fullchainPem: lineage.bundle.fullchain,
    keyPem: lineage.bundle.privkey,
    chainPem: lineage.bundle.chain,
    certPem: lineage.bundle.cert,
  };
}

/**
 * Writes every current lineage (the local CA's root excepted) at start, so
 * nginx has every certificate even if padlock was down when one changed.
 * Unchanged files are left alone; one reload follows if anything changed.
 * Never throws; resolves with one result per lineage.
 */
export async function companionInitial(store: CertStore, companion: Companion): Promise<CompanionWriteResult[]> {
  const results: CompanionWriteResult[] = [];
  let names: string[] = [];
  try {
    names = await store.listLineages();
  } catch (err) {
    return [{ name: '*', ok: false, files: [], changed: false, error: `could not list the store: ${errorMessage(err)}` }];
  }
  for (const name of names) {
    let lineage: Lineage | null = null;
    try {
      lineage = await store.readLineage(name);
    } catch (err) {
      results.push({ name, ok: false, files: [], changed: false, error: errorMessage(err) });
      continue;
    }
    if (!lineage || lineage.meta.server === LOCAL_ROOT_SERVER) continue;
    results.push(await companion.onCertificate({ ...lineageToCompanion(lineage), name }));
  }
  return results;
}

/**
 * A `cert_obtained` listener for the certificate manager: reads the lineage
 * that was just stored and hands it to the companion. Never throws.
 */
export function companionListener(store: CertStore, companion: Companion): (e: { name: string }) => void {
  return ({ name }) => {
    void store.readLineage(name).then(
      (lineage) => (lineage ? companion.onCertificate({ ...lineageToCompanion(lineage), name }) : undefined),
      (err: unknown) => companion.emit('write_failed', { name, error: errorMessage(err) }),
    );
  };
}
