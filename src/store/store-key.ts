/**
 * The store key: the 32 bytes that encrypt private keys at rest in a shared
 * store (Redis), from `--store-key-file` or `PADLOCK_STORE_KEY`.
 *
 * Accepted forms: 64 hex characters, or the base64 (standard or URL-safe,
 * padded or not) of exactly 32 bytes, with surrounding white space ignored.
 * Anything else is refused, with how to make one: `openssl rand -base64 32`.
 * A key file must be a regular file of at most 1 KiB readable by its owner
 * only (mode 0600 or 0400; group and other bits refused like SSH refuses a
 * private key file, saying why). No message ever holds the key or a part of it.
 */
import { open } from 'node:fs/promises';
import { constants as fsConstants } from 'node:fs';
import { PadlockError, errorMessage } from '../errors.js';

/** Bytes of an AES-256 key. */
export const STORE_KEY_BYTES = 32;
/** The env variable that may hold the key itself (the file is preferred: env is visible to the process's children). */
export const STORE_KEY_ENV = 'PADLOCK_STORE_KEY';
/** A key file larger than this is not a key file. */
const MAX_KEY_FILE_BYTES = 1024;

const HOW_TO_MAKE = 'make one with: openssl rand -base64 32 > /etc/padlock/store.key && chmod 600 /etc/padlock/store.key';

/**
 * Parses the text of a key (see the file header). `source` names where it
 * came from in messages (`PADLOCK_STORE_KEY`, `--store-key-file /path`).
 * Throws CONFIG_INVALID for anything that is not a 32-byte key.
 */
export function parseStoreKey(text: string, source: string): Buffer {
  const trimmed = text.trim();
  if (/^[0-9a-fA-F]{64}$/.test(trimmed)) return Buffer.from(trimmed, 'hex');
  if (/^[A-Za-z0-9+/_-]+={0,2}$/.test(trimmed)) {
    const bytes = Buffer.from(trimmed.replace(/-/g, '+').replace(/_/g, '/'), 'base64');
    if (bytes.length === STORE_KEY_BYTES) return bytes;
    throw invalid(`${source} holds base64 of ${bytes.length} bytes; a store key is 32 bytes (64 hex characters, or 44 characters of base64); ${HOW_TO_MAKE}`);
  }
  const what = trimmed === '' ? 'is empty' : `is not a store key (${trimmed.length} characters that are neither 64 hex characters nor base64 of 32 bytes)`;
  throw invalid(`${source} ${what}; ${HOW_TO_MAKE}`);
}

/**
 * Reads and parses a key file. Refuses (CONFIG_INVALID, saying why and the
 * fix) a file that is missing, not a regular file, larger than 1 KiB, or
 * readable or writable by group or others.
 */
export async function readStoreKeyFile(path: string): Promise<Buffer> {
  const source = `--store-key-file ${path}`;
  let handle;
  try {
    handle = await open(path, fsConstants.O_RDONLY | fsConstants.O_NOFOLLOW);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ELOOP') throw invalid(`${source} is a symbolic link; point --store-key-file at the key file itself`, err);
    throw invalid(`${source} cannot be read: ${code === 'ENOENT' ? 'it does not exist' : errorMessage(err)}; ${HOW_TO_MAKE}`, err);
  }
  try {
    // Checked on the open file, not the path: nothing can be swapped in between.
    const st = await handle.stat();
    if (!st.isFile()) throw invalid(`${source} is not a regular file`);
    const mode = st.mode & 0o777;
    if ((mode & 0o077) !== 0) {
      throw invalid(`${source} has permissions ${mode.toString(8).padStart(4, '0')}, which are too open: a store key must be readable by its owner only; run chmod 600 ${path}`);
    }
    if (st.size > MAX_KEY_FILE_BYTES) throw invalid(`${source} is ${st.size} bytes; a key file holds one key (at most ${MAX_KEY_FILE_BYTES} bytes)`);
    const text = await handle.readFile({ encoding: 'utf8' });
    return parseStoreKey(text, source);
  } finally {
    await handle.close();
  }
}

/**
 * The store key from a key file or from the env variable, or undefined when
 * neither is set. Both set is refused: which one wins would be a guess.
 */
export async function loadStoreKey(options: { file?: string | undefined; env?: NodeJS.ProcessEnv }): Promise<Buffer | undefined> {
  const fromEnv = options.env?.[STORE_KEY_ENV];
  const hasEnv = fromEnv !== undefined && fromEnv !== '';
  if (options.file && hasEnv) throw invalid(`both --store-key-file and ${STORE_KEY_ENV} are set; set only one`);
  if (options.file) return readStoreKeyFile(options.file);
  if (hasEnv) return parseStoreKey(fromEnv, STORE_KEY_ENV);
  return undefined;
}

function invalid(message: string, cause?: unknown): PadlockError<'CONFIG_INVALID'> {
  return new PadlockError('CONFIG_INVALID', message, cause === undefined ? {} : { cause });
}
