/**
 * The companion's file writer: every certificate goes into a folder shared
 * with nginx (`companionDir`, nginx-proxy's `/etc/nginx/certs`) in exactly
 * the layout nginx-proxy reads:
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
 * change is not rewritten, so the caller can tell whether nginx needs a
 * reload. The three files of one certificate are replaced one after another.
 */
import { lstat, readFile, readlink, rename, symlink, unlink } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { fsyncDir, writeFileAtomic, mkdirPrivate } from '../store/atomic.js';

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

const NAME_OK = /^[a-z0-9][a-z0-9._-]{0,252}$/;

/** Writes certificates into one folder shared with nginx. */
export class CompanionWriter {
  private dirReady: Promise<void> | undefined;

  /** `dir` is created 0700 when missing (nginx-proxy's master runs as root and reads it). */
  constructor(private readonly dir: string) {}

  /**
   * Writes one certificate's files and alias links, leaving unchanged ones
   * alone. Resolves with every path written or already up to date, and
   * whether any changed; rejects on an unusable name or a failed write.
   */
  async write(cert: CompanionCertificate): Promise<{ files: string[]; changed: boolean }> {
    const name = cert.name;
    if (!NAME_OK.test(name) || name.includes('..')) throw new Error(`"${name}" is not a usable file name`);
    await this.ensureDir();
    const dir = this.dir;
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
    return { files, changed };
  }

  private ensureDir(): Promise<void> {
    this.dirReady ??= (async () => {
      const st = await lstat(this.dir).catch(() => null);
      if (st === null) {
        // A folder we create ourselves; nginx (root) reads it anyway, but keep it private.
        await mkdirPrivate(this.dir);
      } else if (!st.isDirectory()) {
        throw new Error(`${this.dir} exists and is not a folder`);
      }
    })().catch((err: unknown) => {
      this.dirReady = undefined;
      throw err;
    });
    return this.dirReady;
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

