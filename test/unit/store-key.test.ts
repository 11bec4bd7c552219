import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { chmod, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PadlockError } from '../../src/errors.js';
import { loadStoreKey, parseStoreKey, readStoreKeyFile } from '../../src/store/store-key.js';
import { StoreCipher } from '../../src/store/store-cipher.js';

const KEY = randomBytes(32);

function rejectsConfig(says: RegExp, ...secrets: string[]) {
  return (err: unknown): boolean => {
    assert.ok(err instanceof PadlockError, String(err));
    assert.equal(err.code, 'CONFIG_INVALID');
    assert.match(err.message, says);
    for (const s of secrets) assert.ok(!err.message.includes(s), `the message shows the key material: ${err.message}`);
    return true;
  };
}

describe('parseStoreKey', () => {
  const accepted = [
    { desc: '64 hex characters', text: KEY.toString('hex') },
    { desc: '64 hex characters in capitals with a newline', text: `${KEY.toString('hex').toUpperCase()}\n` },
    { desc: 'base64 of 32 bytes (what openssl rand -base64 32 prints)', text: `${KEY.toString('base64')}\n` },
    { desc: 'base64 without padding', text: KEY.toString('base64').replace(/=+$/, '') },
    { desc: 'URL-safe base64', text: KEY.toString('base64url') },
  ];
  for (const c of accepted) it(`accepts ${c.desc}`, () => assert.deepEqual(parseStoreKey(c.text, 'PADLOCK_STORE_KEY'), KEY));

  const refused = [
    { desc: 'an empty value', text: '  \n', says: /PADLOCK_STORE_KEY is empty; make one with: openssl rand -base64 32/ },
    { desc: 'base64 of 16 bytes', text: randomBytes(16).toString('base64'), says: /holds base64 of 16 bytes; a store key is 32 bytes/ },
    { desc: '63 hex characters (read as base64, the wrong length)', text: KEY.toString('hex').slice(0, 63), says: /a store key is 32 bytes/ },
    { desc: 'a passphrase', text: 'correct horse battery staple', says: /is not a store key \(28 characters that are neither 64 hex characters nor base64 of 32 bytes\); make one with: openssl rand -base64 32/ },
  ];
  for (const c of refused) {
    it(`refuses ${c.desc}, saying how to make a key and never showing the value`, () => {
      assert.throws(() => parseStoreKey(c.text, 'PADLOCK_STORE_KEY'), rejectsConfig(c.says, ...(c.text.trim().length > 4 ? [c.text.trim()] : [])));
    });
  }
});

describe('store key files', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'padlock-store-key-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  async function keyFile(name: string, text: string, mode: number): Promise<string> {
    const path = join(dir, name);
    await writeFile(path, text);
    await chmod(path, mode);
    return path;
  }

  for (const mode of [0o600, 0o400]) {
    it(`reads a key file of mode ${mode.toString(8)}`, async () => {
      assert.deepEqual(await readStoreKeyFile(await keyFile(`ok-${mode.toString(8)}`, `${KEY.toString('base64')}\n`, mode)), KEY);
    });
  }

  for (const mode of [0o644, 0o640, 0o604, 0o660]) {
    it(`refuses a key file of mode ${mode.toString(8)} as too open, like SSH, with the chmod to run`, async () => {
      const path = await keyFile(`open-${mode.toString(8)}`, KEY.toString('base64'), mode);
      await assert.rejects(readStoreKeyFile(path), rejectsConfig(new RegExp(`has permissions 0${mode.toString(8)}, which are too open: a store key must be readable by its owner only; run chmod 600 ${path}`), KEY.toString('base64')));
    });
  }

  it('refuses a missing file, a folder, a symbolic link and an oversized file, each saying why', async () => {
    await assert.rejects(readStoreKeyFile(join(dir, 'nope')), rejectsConfig(/cannot be read: it does not exist; make one with: openssl rand -base64 32/));
    await assert.rejects(readStoreKeyFile(dir), rejectsConfig(/is not a regular file|cannot be read/));
    const target = await keyFile('target', KEY.toString('base64'), 0o600);
    await symlink(target, join(dir, 'link'));
    await assert.rejects(readStoreKeyFile(join(dir, 'link')), rejectsConfig(/is a symbolic link/));
    await assert.rejects(readStoreKeyFile(await keyFile('big', 'x'.repeat(4096), 0o600)), rejectsConfig(/is 4096 bytes; a key file holds one key/));
  });

  it('refuses a key file whose content is not a key, without showing it', async () => {
    const path = await keyFile('words', 'hunter2 is my password!\n', 0o600);
    await assert.rejects(readStoreKeyFile(path), rejectsConfig(new RegExp(`--store-key-file ${path} is not a store key`), 'hunter2'));
  });

  it('loadStoreKey takes the file, or PADLOCK_STORE_KEY, refuses both, and is undefined for neither', async () => {
    const path = await keyFile('load', KEY.toString('hex'), 0o600);
    const other = randomBytes(32);
    assert.deepEqual(await loadStoreKey({ file: path }), KEY);
    assert.deepEqual(await loadStoreKey({ env: { PADLOCK_STORE_KEY: other.toString('base64') } }), other);
    assert.equal(await loadStoreKey({ env: { PADLOCK_STORE_KEY: '' } }), undefined);
    assert.equal(await loadStoreKey({}), undefined);
    await assert.rejects(loadStoreKey({ file: path, env: { PADLOCK_STORE_KEY: other.toString('base64') } }), rejectsConfig(/both --store-key-file and PADLOCK_STORE_KEY are set; set only one/, other.toString('base64')));
  });
});

describe('StoreCipher', () => {
  const cipher = new StoreCipher(KEY);
  const secret = '-----BEGIN PRIVATE KEY-----\nsecret\n-----END PRIVATE KEY-----\n';

  it('seals into a versioned value that holds no plain text and differs every time', () => {
    const a = cipher.seal(secret, 'lineage:a:v1:privkey');
    const b = cipher.seal(secret, 'lineage:a:v1:privkey');
    assert.match(a, /^pl1:[A-Za-z0-9_-]+$/);
    assert.notEqual(a, b, 'a fresh IV per value');
    assert.ok(!a.includes('PRIVATE KEY'));
    assert.deepEqual(cipher.open(a, 'lineage:a:v1:privkey'), { ok: true, value: secret });
  });

  const failures: Array<{ desc: string; value: () => string; label: string; why: string }> = [
    { desc: 'another label (a value copied to another version)', value: () => cipher.seal(secret, 'lineage:a:v1:privkey'), label: 'lineage:a:v2:privkey', why: 'does-not-decrypt' },
    { desc: 'another key', value: () => new StoreCipher(randomBytes(32)).seal(secret, 'x'), label: 'x', why: 'does-not-decrypt' },
    { desc: 'a changed byte', value: () => {
      const v = cipher.seal(secret, 'x');
      const i = v.length - 10;
      return v.slice(0, i) + (v[i] === 'A' ? 'B' : 'A') + v.slice(i + 1);
    }, label: 'x', why: 'does-not-decrypt' },
    { desc: 'a truncated value', value: () => 'pl1:AAAA', label: 'x', why: 'does-not-decrypt' },
    { desc: 'a PEM in clear', value: () => secret, label: 'x', why: 'unknown-format' },
    { desc: 'a later format', value: () => 'pl2:AAAA', label: 'x', why: 'unknown-format' },
  ];
  for (const c of failures) it(`does not open ${c.desc}: ${c.why}`, () => assert.deepEqual(cipher.open(c.value(), c.label), { ok: false, why: c.why }));

  it('does not show its key when inspected or serialised', async () => {
    const { inspect } = await import('node:util');
    const shown = `${inspect(cipher, { depth: 5, showHidden: true })} ${JSON.stringify(cipher)}`;
    for (const form of [KEY.toString('hex'), KEY.toString('base64')]) assert.ok(!shown.includes(form));
  });
});
