/**
 * Encryption at rest for the secrets a shared store holds (lineage private
 * keys, ACME account keys): AES-256-GCM from node:crypto.
 *
 * A sealed value is `pl1:` + base64url(IV || ciphertext || tag):
 * - `pl1:` names the format, so it can change later without guessing;
 * - the IV is 12 random bytes per value (never reused with one key: 2^32
 *   values per key stay far inside GCM's random-IV bound);
 * - the tag is GCM's 16-byte tag;
 * - the additional authenticated data is the value's label (which secret of
 *   which item it is, e.g. `lineage:a.example:v3:privkey`), so a value
 *   copied under another name or version does not decrypt.
 */
import { createCipheriv, createDecipheriv, createSecretKey, randomBytes, type KeyObject } from 'node:crypto';
import { STORE_KEY_BYTES } from './store-key.js';

const FORMAT = 'pl1:';
const IV_BYTES = 12;
const TAG_BYTES = 16;

/** Why a value could not be opened. */
export type OpenFailure = 'unknown-format' | 'does-not-decrypt';

/**
 * Seals and opens secrets with one store key. The key lives in a KeyObject,
 * which neither util.inspect nor JSON.stringify reveal.
 */
export class StoreCipher {
  readonly #key: KeyObject;

  constructor(key: Buffer) {
    if (key.length !== STORE_KEY_BYTES) throw new RangeError(`a store key is ${STORE_KEY_BYTES} bytes, got ${key.length}`);
    this.#key = createSecretKey(Buffer.from(key));
  }

  /** `plain` encrypted under a fresh IV, bound to `label`. */
  seal(plain: string, label: string): string {
    const iv = randomBytes(IV_BYTES);
    const cipher = createCipheriv('aes-256-gcm', this.#key, iv, { authTagLength: TAG_BYTES });
    cipher.setAAD(Buffer.from(label, 'utf8'));
    const body = Buffer.concat([cipher.update(plain, 'utf8'), cipher.final()]);
    return FORMAT + Buffer.concat([iv, body, cipher.getAuthTag()]).toString('base64url');
  }

  /**
   * The plain text of a value sealed with this key and this label, or why
   * not: `unknown-format` (not sealed by padlock, or by a later format),
   * `does-not-decrypt` (another key, another label, or changed bytes).
   */
  open(sealed: string, label: string): { ok: true; value: string } | { ok: false; why: OpenFailure } {
    if (typeof sealed !== 'string' || !sealed.startsWith(FORMAT)) return { ok: false, why: 'unknown-format' };
    const raw = Buffer.from(sealed.slice(FORMAT.length), 'base64url');
    if (raw.length < IV_BYTES + TAG_BYTES) return { ok: false, why: 'does-not-decrypt' };
    try {
      const decipher = createDecipheriv('aes-256-gcm', this.#key, raw.subarray(0, IV_BYTES), { authTagLength: TAG_BYTES });
      decipher.setAAD(Buffer.from(label, 'utf8'));
      decipher.setAuthTag(raw.subarray(raw.length - TAG_BYTES));
      const plain = Buffer.concat([decipher.update(raw.subarray(IV_BYTES, raw.length - TAG_BYTES)), decipher.final()]);
      return { ok: true, value: plain.toString('utf8') };
    } catch {
      return { ok: false, why: 'does-not-decrypt' };
    }
  }
}
