/**
 * The command table that `padlock --help` lists without loading any command
 * (src/cli/commands.ts) must say what each command's own module says, and
 * name the module that runs it.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { COMMANDS, named } from '../../src/cli/commands.js';

describe('the command table', () => {
  for (const entry of COMMANDS) {
    it(`lists "${entry.command}" as its module does`, async () => {
      const module = await entry.load();
      assert.equal(module.command, entry.command);
      assert.equal(module.describe, entry.describe);
      assert.deepEqual(module.aliases, entry.aliases);
    });
  }

  const cases: { desc: string; argv: string[]; expect: string[] }[] = [
    { desc: 'no command: --version loads nothing', argv: ['--version'], expect: [] },
    { desc: 'a command by name', argv: ['issue', '-d', 'example.com'], expect: ['issue'] },
    { desc: 'a command by alias', argv: ['list', '--json'], expect: ['certificates'] },
    { desc: 'a command after an option', argv: ['--config-dir', '/srv/padlock', 'renew'], expect: ['renew'] },
    { desc: 'a command with positional arguments', argv: ['check', 'example.com:443'], expect: ['check <target>'] },
    { desc: 'a word after -- is not a command', argv: ['issue', '--', 'run'], expect: ['issue'] },
  ];
  for (const c of cases) {
    it(`loads the named commands only: ${c.desc}`, () => {
      assert.deepEqual([...named(c.argv)].map((e) => e.command), c.expect);
    });
  }
});
