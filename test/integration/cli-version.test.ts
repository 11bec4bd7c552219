/**
 * `padlock --version` is answered before any command module or yargs loads
 * (src/cli/index.ts), so it must still say the package's version, and the
 * same as the yargs path does for `padlock <anything> --version`.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { promisify } from 'node:util';
import { fileURLToPath } from 'node:url';

const run = promisify(execFile);
const bin = fileURLToPath(new URL('../../bin/padlock', import.meta.url));

describe('padlock --version', () => {
  it('prints the version in package.json and exits 0, alone and after other options', async () => {
    const { version } = JSON.parse(await readFile(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
    const alone = await run(bin, ['--version']);
    assert.equal(alone.stdout, `${version}\n`);
    const withOption = await run(bin, ['--log-level', 'warn', '--version']);
    assert.equal(withOption.stdout.trim(), version, 'the yargs path says the same');
  });
});
