import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { BlockList } from 'node:net';
import { addCidr, cidrProblem, configuredOwnPorts, isLoopbackAddress, UpstreamGuard, type UpstreamRule } from '../../src/proxy/upstream-guard.js';
import { guardedLookup } from '../../src/proxy/upstream-connect.js';

/** padlock listens on 80, 443 and 9180 (admin); 10.1.2.3 and fd12::3 are this host's interface addresses. */
const SPEC = { ownPorts: [80, 443, 9180], localAddresses: ['10.1.2.3', 'fd12::3', 'fe80::1%eth0'] };

describe('UpstreamGuard.check: addresses x rules x allow list', () => {
  const table: Array<{ desc: string; address: string; port: number; allow?: string[]; rule: UpstreamRule | undefined }> = [
    // padlock's own listeners: never, whatever the allow list says
    { desc: 'loopback on the admin port', address: '127.0.0.1', port: 9180, rule: 'own-listener' },
    { desc: 'any 127/8 address on the HTTPS port', address: '127.200.0.1', port: 443, rule: 'own-listener' },
    { desc: 'IPv6 loopback on the HTTP port', address: '::1', port: 80, rule: 'own-listener' },
    { desc: 'IPv4-mapped loopback on the admin port', address: '::ffff:127.0.0.1', port: 9180, rule: 'own-listener' },
    { desc: 'the unspecified address 0.0.0.0 on the admin port', address: '0.0.0.0', port: 9180, rule: 'own-listener' },
    { desc: 'the unspecified address :: on the HTTPS port', address: '::', port: 443, rule: 'own-listener' },
    { desc: 'this host\'s interface address on the admin port', address: '10.1.2.3', port: 9180, rule: 'own-listener' },
    { desc: 'this host\'s IPv6 interface address, bracketed, on the HTTP port', address: '[fd12::3]', port: 80, rule: 'own-listener' },
    { desc: 'own listener even when the allow list covers everything', address: '127.0.0.1', port: 9180, allow: ['0.0.0.0/0', '::/0'], rule: 'own-listener' },
    { desc: 'loopback on a port padlock does not use', address: '127.0.0.1', port: 3000, rule: undefined },
    { desc: 'this host\'s address on another port', address: '10.1.2.3', port: 8080, rule: undefined },
    { desc: 'another host on padlock\'s admin port', address: '10.1.2.4', port: 9180, rule: undefined },
    // cloud metadata
    { desc: 'AWS/GCP/Azure metadata 169.254.169.254', address: '169.254.169.254', port: 80, rule: 'metadata' },
    { desc: 'AWS ECS task metadata 169.254.170.2', address: '169.254.170.2', port: 80, rule: 'metadata' },
    { desc: 'AWS IMDS over IPv6 fd00:ec2::254', address: 'fd00:ec2::254', port: 80, rule: 'metadata' },
    { desc: 'Alibaba Cloud metadata 100.100.100.200', address: '100.100.100.200', port: 80, rule: 'metadata' },
    { desc: 'metadata in IPv4-mapped form', address: '::ffff:169.254.169.254', port: 80, rule: 'metadata' },
    { desc: 'metadata in hex IPv4-mapped form', address: '::ffff:a9fe:a9fe', port: 80, rule: 'metadata' },
    { desc: 'metadata allowed by its /32', address: '169.254.169.254', port: 80, allow: ['169.254.169.254/32'], rule: undefined },
    { desc: 'metadata allowed by a bare address', address: '169.254.169.254', port: 80, allow: ['169.254.169.254'], rule: undefined },
    { desc: 'IPv6 metadata allowed by its /128', address: 'fd00:ec2::254', port: 80, allow: ['fd00:ec2::254/128'], rule: undefined },
    { desc: 'metadata not covered by an allow list for another range', address: '169.254.169.254', port: 80, allow: ['169.254.10.0/24'], rule: 'metadata' },
    // link-local
    { desc: 'IPv4 link-local', address: '169.254.1.1', port: 8080, rule: 'link-local' },
    { desc: 'the last IPv4 link-local address', address: '169.254.255.255', port: 8080, rule: 'link-local' },
    { desc: 'IPv6 link-local', address: 'fe80::1', port: 8080, rule: 'link-local' },
    { desc: 'IPv6 link-local with a zone', address: 'fe80::1%eth0', port: 8080, rule: 'link-local' },
    { desc: 'the top of fe80::/10', address: 'febf::1', port: 8080, rule: 'link-local' },
    { desc: 'IPv4-mapped link-local', address: '::ffff:169.254.1.1', port: 8080, rule: 'link-local' },
    { desc: 'link-local allowed by its range', address: '169.254.10.5', port: 8080, allow: ['169.254.10.0/24'], rule: undefined },
    { desc: 'IPv6 link-local allowed by fe80::/10', address: 'fe80::1', port: 8080, allow: ['fe80::/10'], rule: undefined },
    // neither
    { desc: 'just outside 169.254/16', address: '169.255.0.1', port: 80, rule: undefined },
    { desc: 'fec0::1, outside fe80::/10', address: 'fec0::1', port: 80, rule: undefined },
    { desc: 'a private container address', address: '172.17.0.2', port: 80, rule: undefined },
    { desc: 'a public address', address: '192.0.2.10', port: 443, rule: undefined },
    { desc: 'a name (judged only once resolved)', address: 'metadata.google.internal', port: 80, rule: undefined },
  ];
  for (const c of table) {
    it(`${c.desc}: ${c.rule ?? 'allowed'}`, () => {
      const guard = new UpstreamGuard({ ...SPEC, ...(c.allow ? { allow: c.allow } : {}) });
      assert.equal(guard.check(c.address, c.port)?.rule, c.rule);
    });
  }

  it('a refusal names the rule, the address and the override, and nothing else', () => {
    const guard = new UpstreamGuard(SPEC);
    assert.deepEqual(guard.check('169.254.169.254', 80), {
      rule: 'metadata',
      address: '169.254.169.254',
      port: 80,
      reason: 'goes to 169.254.169.254, a cloud metadata service address; padlock refuses it unless --allow-upstream covers it (--allow-upstream 169.254.169.254/32)',
    });
    assert.equal(guard.check('127.0.0.1', 9180)?.reason, "goes to padlock's own listener (127.0.0.1 port 9180); padlock never forwards a request to itself");
  });

  it('withOwnPorts replaces the ports and keeps the rest', () => {
    const guard = new UpstreamGuard({ ...SPEC, allow: ['169.254.169.254/32'] }).withOwnPorts([8443]);
    assert.equal(guard.check('127.0.0.1', 9180), undefined);
    assert.equal(guard.check('127.0.0.1', 8443)?.rule, 'own-listener');
    assert.equal(guard.check('169.254.169.254', 80), undefined);
  });

  it('a port of 0 (not bound yet) protects nothing', () => {
    assert.equal(new UpstreamGuard({ ownPorts: [0] }).check('127.0.0.1', 0), undefined);
  });
});

describe('UpstreamGuard.checkUrl: hosts that need no DNS', () => {
  const guard = new UpstreamGuard(SPEC);
  const table: Array<{ desc: string; url: string; rule: UpstreamRule | undefined }> = [
    { desc: 'an IPv4 literal on the admin port', url: 'http://127.0.0.1:9180', rule: 'own-listener' },
    { desc: 'localhost on the admin port', url: 'http://localhost:9180', rule: 'own-listener' },
    { desc: 'a *.localhost name on the HTTPS port', url: 'https://admin.localhost:443', rule: 'own-listener' },
    { desc: 'an IPv6 literal on the HTTP port', url: 'http://[::1]:80', rule: 'own-listener' },
    { desc: 'the default port of https', url: 'https://127.0.0.1', rule: 'own-listener' },
    { desc: 'a metadata literal', url: 'http://169.254.169.254:80', rule: 'metadata' },
    { desc: 'localhost on another port', url: 'http://localhost:3000', rule: undefined },
    { desc: 'a DNS name, even a suspicious one (judged when it resolves)', url: 'http://metadata.google.internal:80', rule: undefined },
    { desc: 'not a URL', url: 'not a url', rule: undefined },
  ];
  for (const c of table) it(`${c.desc}: ${c.rule ?? 'allowed'}`, () => assert.equal(guard.checkUrl(c.url)?.rule, c.rule));
});

describe('CIDRs from the config', () => {
  const table: Array<{ desc: string; text: string; problem?: RegExp }> = [
    { desc: 'an IPv4 CIDR', text: '169.254.0.0/16' },
    { desc: 'an IPv6 CIDR', text: 'fd00::/8' },
    { desc: 'a bare IPv4 address', text: '10.0.0.1' },
    { desc: 'a bare IPv6 address', text: '::1' },
    { desc: 'spaces around it', text: ' 10.0.0.0/8 ' },
    { desc: 'an IPv4 prefix over 32', text: '10.0.0.0/33', problem: /"10\.0\.0\.0\/33" has a bad prefix length: an IPv4 CIDR takes \/0 to \/32/ },
    { desc: 'an IPv6 prefix over 128', text: 'fe80::/129', problem: /an IPv6 CIDR takes \/0 to \/128/ },
    { desc: 'a prefix that is not a number', text: '10.0.0.0/x', problem: /bad prefix length/ },
    { desc: 'an empty prefix', text: '10.0.0.0/', problem: /bad prefix length/ },
    { desc: 'a name', text: 'metadata.internal', problem: /"metadata\.internal" is not an IP address or CIDR/ },
    { desc: 'a bracketed IPv6 address', text: '[::1]/128', problem: /is not an IP address or CIDR/ },
    { desc: 'nothing', text: '', problem: /is not an IP address or CIDR/ },
  ];
  for (const c of table) {
    it(`${c.desc}: ${c.problem ? 'refused' : 'accepted'}`, () => {
      const problem = cidrProblem(c.text);
      if (c.problem) assert.match(problem ?? '', c.problem);
      else assert.equal(problem, undefined);
    });
  }

  it('addCidr leaves the list unchanged on a bad entry', () => {
    const list = new BlockList();
    assert.ok(addCidr(list, '10.0.0.0/40'));
    assert.deepEqual(list.rules, []);
  });
});

describe('helpers', () => {
  it('isLoopbackAddress: 127/8, ::1 and mapped forms, with or without brackets; not names or other addresses', () => {
    for (const a of ['127.0.0.1', '127.255.0.9', '::1', '[::1]', '::ffff:127.0.0.1']) assert.equal(isLoopbackAddress(a), true, a);
    for (const a of ['localhost', '10.0.0.1', '0.0.0.0', '::', 'fe80::1', '']) assert.equal(isLoopbackAddress(a), false, a);
  });

  it('configuredOwnPorts takes the HTTP, HTTPS and admin ports, leaving out 0', () => {
    assert.deepEqual(configuredOwnPorts({ httpPort: 80, httpsPort: 443, adminListen: '127.0.0.1:9180' }), [80, 443, 9180]);
    assert.deepEqual(configuredOwnPorts({ httpPort: 0, httpsPort: 8443, adminListen: '[::1]:0' }), [8443]);
  });
});

describe('guardedLookup (connect-time check of resolved names; no socket is opened here)', () => {
  type Answer = Array<{ address: string; family: number }>;
  const fakeResolver = (answer: Answer) => (_host: string, options: { all?: boolean }, cb: (err: NodeJS.ErrnoException | null, a: string | Answer, f?: number) => void) =>
    options.all ? cb(null, answer) : cb(null, answer[0]!.address, answer[0]!.family);
  const resolve = (answer: Answer, port: number, all: boolean, allow?: string[]) =>
    new Promise<{ err: (Error & { code?: string }) | null; address: unknown }>((done) => {
      const guard = new UpstreamGuard({ ...SPEC, ...(allow ? { allow } : {}) });
      guardedLookup(() => guard, port, fakeResolver(answer) as never)('app.test', { all }, (err, address) => done({ err, address }));
    });

  const table: Array<{ desc: string; answer: Answer; port: number; all: boolean; allow?: string[]; refused: boolean }> = [
    { desc: 'a name resolving to padlock\'s admin port on loopback', answer: [{ address: '127.0.0.1', family: 4 }], port: 9180, all: true, refused: true },
    { desc: 'the same, for a single-address lookup', answer: [{ address: '127.0.0.1', family: 4 }], port: 9180, all: false, refused: true },
    { desc: 'a name resolving to the metadata service', answer: [{ address: '169.254.169.254', family: 4 }], port: 80, all: true, refused: true },
    { desc: 'a good address and a metadata one together', answer: [{ address: '192.0.2.1', family: 4 }, { address: 'fd00:ec2::254', family: 6 }], port: 80, all: true, refused: true },
    { desc: 'a metadata name covered by --allow-upstream', answer: [{ address: '169.254.169.254', family: 4 }], port: 80, all: true, allow: ['169.254.169.254/32'], refused: false },
    { desc: 'a name resolving to loopback on another port', answer: [{ address: '127.0.0.1', family: 4 }], port: 3000, all: true, refused: false },
  ];
  for (const c of table) {
    it(`${c.desc}: ${c.refused ? 'UPSTREAM_FORBIDDEN before any connection' : 'passed on'}`, async () => {
      const { err, address } = await resolve(c.answer, c.port, c.all, c.allow);
      if (c.refused) {
        assert.equal(err?.code, 'UPSTREAM_FORBIDDEN');
        assert.match(err!.message, /^upstream app\.test:\d+ goes to /);
      } else {
        assert.equal(err, null);
        assert.deepEqual(address, c.all ? c.answer : c.answer[0]!.address);
      }
    });
  }
});
