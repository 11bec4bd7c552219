/**
 * Summarizes `perf script` output of padlock's processes (native, kernel and
 * JavaScript frames together), which V8's `--cpu-prof` cannot do: there,
 * OpenSSL's handshake, the kernel's socket work and Node's C++ all hide inside
 * whichever JS-to-native call was on the stack (a `writeLatin1String` that
 * "takes 27 %").
 *
 * Record (padlock started with NODE_OPTIONS=--perf-basic-prof so JIT frames
 * have names; the machine has no hardware counters, so the software clock):
 *
 *   perf record -e cpu-clock -F 999 -g -p WORKER1,WORKER2 -o OUT.data -- sleep 8
 *   perf script -i OUT.data -F comm,tid,ip,sym > OUT.txt
 *   npx node --import tsx bench/proxy/perf-summary.ts OUT.txt
 *
 * Prints, for each bucket, the share of samples whose stack contains a frame
 * matching it (inclusive, so buckets overlap: "handshake" includes the ticket
 * callback it calls).
 */
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';

/** [label, pattern]: a sample counts for the bucket when any of its frames matches. Indented labels are parts of the one above. */
export const BUCKETS: ReadonlyArray<readonly [string, RegExp]> = [
  ['OpenSSL handshake (state_machine)', /^state_machine$/],
  ['  ticket key callback (C++ and padlock JS)', /TicketKeyCallback/],
  ['  key share (X25519 key generation)', /tls_construct_stoc_key_share/],
  ['  ticket decryption (resumption)', /ssl_get_prev_session/],
  ['  new session ticket', /tls_construct_new_session_ticket/],
  ['  SHA-512 blocks (SHA-384 key schedule)', /sha512_block/],
  ['  SNI callback (JS)', /loadSNI|oncertcb/],
  ['  ECDSA signature (full handshakes only)', /ecdsa_sign|ECDSA_do_sign|tls_construct_cert_verify/],
  ['TLS record writes (TLSWrap::EncOut)', /TLSWrap::EncOut/],
  ['accept and TLSSocket set-up (onconnection)', /'onconnection node:net/],
  ['HTTP/1.1 parser and request handling', /llhttp__internal_execute/],
  ['request forwarding (padlock, undici, the response)', /undici\/|'(web|forward|dispatch|send) file|prepareRequestHeaders|stripHopByHop|_http_outgoing|_http_server/],
  ['undici (upstream client)', /undici\//],
  ['padlock code', /dist\/app\/|\/src\//],
  ['shutdown and close (uv_shutdown, OnClose)', /AfterUvShutdown|HandleWrap::OnClose|__GI___shutdown/],
  ['GC', /Scavenge|v8::internal::Heap::|MarkCompact|Sweeper/],
  ['V8 worker threads (concurrent compiler, GC helpers)', /PlatformWorkerThread/],
  ['kernel (system calls)', /entry_SYSCALL/],
  ['  write', /ksys_write|do_writev/],
  ['  epoll', /epoll/],
];

/** Stacks (leaf first) from `perf script -F comm,tid,ip,sym` text. */
export function parseStacks(text: string): string[][] {
  const stacks: string[][] = [];
  let current: string[] | undefined;
  for (const line of text.split('\n')) {
    if (line.trim() === '') {
      if (current) stacks.push(current);
      current = undefined;
    } else if (!/^\s/.test(line)) {
      current = [];
    } else if (current) {
      const parts = line.trim().split(/\s+/);
      current.push(parts.slice(1).join(' ') || '?');
    }
  }
  if (current) stacks.push(current);
  return stacks;
}

export function summarizeStacks(stacks: string[][]): { samples: number; buckets: { label: string; pct: number }[] } {
  const counts = BUCKETS.map(() => 0);
  for (const stack of stacks) BUCKETS.forEach(([, re], i) => {
    if (stack.some((f) => re.test(f))) counts[i]!++;
  });
  const n = Math.max(1, stacks.length);
  return { samples: stacks.length, buckets: BUCKETS.map(([label], i) => ({ label, pct: Math.round((1000 * counts[i]!) / n) / 10 })) };
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  for (const file of process.argv.slice(2)) {
    const s = summarizeStacks(parseStacks(await readFile(file, 'utf8')));
    console.log(`${file}: ${s.samples} samples\n\n| where (inclusive) | % of samples |\n|---|---:|`);
    for (const b of s.buckets) console.log(`| ${b.label.replace(/^ {2}/, '… ')} | ${b.pct} |`);
    console.log('');
  }
}
