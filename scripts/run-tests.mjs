#!/usr/bin/env node
// Runs the test suite with node's own runner and fails when no test ran.
// `node --test` with a bad glob runs nothing and exits 0; this script lists
// the files itself, and counts what the TAP reporter saw.
import { spawnSync } from 'node:child_process';
import { readdirSync, statSync, readFileSync, mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';

const roots = process.argv.slice(2).length ? process.argv.slice(2) : ['test/unit', 'test/contract', 'test/integration'];
const files = [];
const walk = (dir) => {
  for (const entry of readdirSync(dir).sort()) {
    const p = join(dir, entry);
    if (statSync(p).isDirectory()) walk(p);
    else if (/\.test\.ts$/.test(entry)) files.push(p);
  }
};
for (const r of roots) {
  if (statSync(r, { throwIfNoEntry: false })?.isDirectory()) walk(r);
  else if (/\.test\.ts$/.test(r)) files.push(r);
}
if (files.length === 0) {
  console.error(`run-tests: no *.test.ts files under ${roots.join(', ')}`);
  process.exit(1);
}
mkdirSync('.test-results', { recursive: true });
const tap = `.test-results/tap-${process.pid}.txt`;
const res = spawnSync(process.execPath, [
  '--import', 'tsx',
  '--test',
  '--test-concurrency=2',
  '--test-timeout=180000',
  '--test-reporter=spec', '--test-reporter-destination=stdout',
  '--test-reporter=tap', `--test-reporter-destination=${tap}`,
  ...files,
], { stdio: 'inherit' });
const text = readFileSync(tap, 'utf8');
rmSync(tap, { force: true });
const count = (k) => Number((text.match(new RegExp(`^# ${k} (\\d+)$`, 'm')) ?? [])[1] ?? 0);
// A test cancelled (its before() hook failed, its file crashed) did not pass: it counts as failed.
const tests = count('tests'), pass = count('pass'), cancelled = count('cancelled'), fail = count('fail') + cancelled, skipped = count('skipped'), todo = count('todo');
console.log(`\nrun-tests: ${files.length} files, ${tests} tests, ${todo} todo, ${cancelled} cancelled, on node ${process.version}`);
console.log(`tests: ${pass} passed, ${fail} failed, ${skipped} skipped`);
if (tests === 0) {
  console.error('run-tests: no test ran; failing on purpose');
  process.exit(1);
}
if (skipped > 0 || todo > 0) {
  console.error('run-tests: skipped or todo tests are not allowed in CI');
  process.exit(1);
}
process.exit(res.status ?? 1);
