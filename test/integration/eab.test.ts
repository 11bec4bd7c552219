/**
 * External account binding (RFC 8555 section 7.3.4) against a Pebble that requires it.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { startPebble, type Pebble } from '../support/pebble.js';
import { runCli } from '../support/cli.js';
import { pebbleFlags, tempConfigDir, uniqueName } from '../support/padlock.js';

const KID = 'kid-padlock';
const HMAC = 'zWNDZM6eQGHWpSRTPal5eIUYFTu7EajVIoguysqZ9wG44nMEtx3MUAsUDkMTQ12W';

let pebble: Pebble;
let cfg: { dir: string; cleanup: () => Promise<void> };

before(async () => {
  pebble = await startPebble({ eab: { [KID]: HMAC } });
  cfg = await tempConfigDir();
});
after(async () => {
  await pebble?.stop();
  await cfg?.cleanup();
});

describe('external account binding', () => {
  it('fails clearly without EAB when the CA requires it', async () => {
    const r = await runCli(['issue', '-d', uniqueName('noeab'), ...pebbleFlags(pebble), '--config-dir', cfg.dir]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /registering the ACME account: the CA refused \(externalAccountRequired\)/);
  });

  it('registers with --eab-kid and --eab-hmac-key and issues, never writing the HMAC key anywhere', async () => {
    const name = uniqueName('eab');
    const r = await runCli(['issue', '-d', name, '--eab-kid', KID, '--eab-hmac-key', HMAC, ...pebbleFlags(pebble), '--config-dir', cfg.dir]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /registered a new account/);
    await readFile(join(cfg.dir, 'live', name, 'fullchain.pem'), 'utf8');
    const meta = await readFile(join(cfg.dir, 'renewal', `${name}.json`), 'utf8');
    assert.doesNotMatch(meta + r.stdout + r.stderr, new RegExp(HMAC));
  });

  it('rejects a wrong HMAC key with the CA words', async () => {
    const other = await tempConfigDir();
    after(other.cleanup);
    const r = await runCli(['issue', '-d', uniqueName('badeab'), '--eab-kid', KID, '--eab-hmac-key', 'AAAA' + HMAC.slice(4), ...pebbleFlags(pebble), '--config-dir', other.dir]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /registering the ACME account: the CA refused \(unauthorized\)/);
  });
});
