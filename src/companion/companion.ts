/**
 * Companion mode: padlock as the certificate companion of an existing
 * nginx-proxy (the job acme-companion does).
 *
 * padlock writes every certificate into a folder shared with nginx
 * (`companionDir`, nginx-proxy's `/etc/nginx/certs`) in exactly the layout
 * nginx-proxy reads (writer.ts), then, if asked, reloads nginx (reloader.ts;
 * through Docker: docker-reload.ts). Its settings are in config.ts, and
 * wiring.ts connects it to the store and the certificate manager.
 *
 * When nothing changed nginx is not reloaded. The three files of one
 * certificate are replaced one after another, never between a reload: the
 * reload comes after all of them.
 *
 * Errors (a folder that cannot be written, Docker unreachable, a failing
 * command) are logged, counted in `status()` and emitted as events; they are
 * never thrown into the certificate path: `onCertificate` always resolves.
 */
import { EventEmitter } from 'node:events';
import { errorMessage } from '../errors.js';
import type { Logger } from '../log.js';
import { silentLogger } from '../log.js';
import { CompanionWriter, type CompanionCertificate } from './writer.js';
import { ReloadScheduler, type ReloadMode, type ReloadOutcome } from './reloader.js';

/** How to build a Companion. */
export interface CompanionOptions {
  /** The folder shared with nginx. Created 0700 when missing (nginx-proxy's master runs as root and reads it). */
  dir: string;
  reload: ReloadMode;
  /** Default 2000 ms. */
  debounceMs?: number;
  logger?: Logger;
  now?: () => Date;
}

/** What `status()` reports. */
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

/** The events a Companion emits, with their payloads. */
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

/**
 * The companion: writes each certificate for nginx, then reloads nginx once
 * for every burst of changes. Counts and emits both; never throws into the
 * certificate path.
 */
export class Companion extends EventEmitter<CompanionEvents> {
  private readonly log: Logger;
  private readonly now: () => Date;
  private readonly writer: CompanionWriter;
  private readonly reloader: ReloadScheduler;
  private readonly stats: Omit<CompanionStatus, 'dir' | 'reload' | 'reloadPending'> = { written: 0, writeErrors: 0, reloads: 0, reloadErrors: 0 };

  constructor(private readonly opts: CompanionOptions) {
    super();
    this.log = (opts.logger ?? silentLogger).child({ component: 'companion' });
    this.now = opts.now ?? (() => new Date());
    this.writer = new CompanionWriter(opts.dir);
    this.reloader = new ReloadScheduler(opts.reload, opts.debounceMs ?? 2000, this.now, (outcome) => this.recordReload(outcome));
  }

  /**
   * Writes one certificate for nginx and schedules a reload when anything
   * changed. Always resolves; a failure is logged, emitted and returned.
   */
  async onCertificate(cert: CompanionCertificate): Promise<CompanionWriteResult> {
    const name = cert.name;
    try {
      const { files, changed } = await this.writer.write(cert);
      this.stats.written += 1;
      this.stats.lastWrite = { name, at: this.now().toISOString(), changed };
      this.log.info(changed ? 'wrote certificate for nginx' : 'certificate for nginx already up to date', { name, dir: this.opts.dir });
      this.emit('written', { name, files, changed });
      if (changed) this.reloader.schedule();
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
  flush(): Promise<void> {
    return this.reloader.flush();
  }

  /** Flushes a pending reload (bounded by the reload's own timeouts) and stops scheduling new ones. */
  close(): Promise<void> {
    return this.reloader.close();
  }

  /** Counters and the last write and reload, for the status page. */
  status(): CompanionStatus {
    return { dir: this.opts.dir, reload: this.opts.reload.kind, ...this.stats, reloadPending: this.reloader.pending };
  }

  private recordReload(outcome: ReloadOutcome): void {
    const mode = this.opts.reload;
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
