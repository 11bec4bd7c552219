// Reference row for bench/proxy: a bare Node HTTPS server answering the same
// tiny body itself (no forwarding), with the same certificate. It shows what
// Node's TLS + HTTP server costs on its own, one thread, on this machine.
//   node bench/proxy/hello-server.mjs PORT FULLCHAIN PRIVKEY BODY
import https from 'node:https';
import { readFileSync } from 'node:fs';

const [port, certFile, keyFile, body] = process.argv.slice(2);
const payload = Buffer.from(body ?? 'hello\n');
const server = https.createServer(
  { cert: readFileSync(certFile), key: readFileSync(keyFile), minVersion: 'TLSv1.2', ALPNProtocols: ['http/1.1'] },
  (req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain', 'content-length': payload.length });
    res.end(payload);
  },
);
server.keepAliveTimeout = 30_000;
server.listen(Number(port), '127.0.0.1');
process.on('SIGTERM', () => process.exit(0));
