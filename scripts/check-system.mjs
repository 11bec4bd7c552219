#!/usr/bin/env node
// Fails early, with the Debian package to install, when a program the tests
// need is missing. It installs nothing by itself.
import { spawnSync } from 'node:child_process';

const needs = [
  { cmd: 'pebble', pkg: 'pebble', why: "Let's Encrypt's test CA" },
  { cmd: 'pebble-challtestsrv', pkg: 'pebble', why: 'DNS for the test CA' },
  { cmd: 'openssl', pkg: 'openssl', why: 'test certificates, and the second opinion on chains in tests' },
  { cmd: 'dockerd', pkg: 'docker.io', why: 'a private Docker engine for discovery tests' },
  { cmd: 'containerd', pkg: 'docker.io', why: "the Docker engine's runtime" },
  { cmd: 'busybox', pkg: 'busybox-static', why: 'the tiny test image' },
  { cmd: 'chromium', pkg: 'chromium', why: 'the dashboard test (headless)' },
  { cmd: 'redis-server', pkg: 'redis-server', why: 'the Redis store and fleet tests' },
  { cmd: 'redis-cli', pkg: 'redis-tools', why: 'setting up Redis Sentinel and Cluster in the store tests' },
  { cmd: 'knotd', pkg: 'knot', why: 'the authoritative DNS server of the DNS-01 tests (RFC 2136 with TSIG)' },
  { cmd: 'kdig', pkg: 'knot-dnsutils', why: 'DNS queries in the DNS-01 tests' },
  { cmd: 'knsupdate', pkg: 'knot-dnsutils', why: 'zone changes made by the fake DNS provider APIs' },
];
const missing = needs.filter((n) => spawnSync('sh', ['-c', `command -v ${n.cmd} || test -x /usr/sbin/${n.cmd} || test -x /bin/${n.cmd}`]).status !== 0);
const major = Number(process.versions.node.split('.')[0]);
const problems = [];
if (major < 22) problems.push(`Node ${process.version} is too old: run through npm (npm test) so node_modules/.bin/node (Node 24) is used, after npm ci.`);
for (const m of missing) problems.push(`missing program "${m.cmd}" (${m.why}): install the Debian package: apt-get install ${m.pkg}`);
if (problems.length) {
  console.error('padlock tests cannot run:\n  - ' + problems.join('\n  - '));
  process.exit(1);
}
