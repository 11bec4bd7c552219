// The "container" of bench/redeploy for the rows without Docker: a tiny HTTP
// app on 127.0.0.1 that the bench stops (SIGTERM) and starts again.
//   node bench/redeploy/app.mjs PORT NAME [GO_FILE]
// With GO_FILE, the process starts at once but listens only once that file
// exists: the bench spawns the next app during the gap and creates the file
// when the gap ends, so the gap does not include Node's start-up time.
import http from 'node:http';
import { existsSync, writeFileSync } from 'node:fs';

const [port, name, goFile] = process.argv.slice(2);
const body = Buffer.from(`${name ?? 'app'}\n`);
const server = http.createServer((req, res) => {
  res.writeHead(200, { 'content-type': 'text/plain', 'content-length': body.length });
  res.end(body);
});
server.keepAliveTimeout = 30_000;
// With GO_FILE, GO_FILE.listening gets the time (ms since the epoch) the app started listening: the bench's gap ends there.
const listen = () => server.listen(Number(port), '127.0.0.1', () => {
  if (goFile) writeFileSync(`${goFile}.listening`, String(Date.now()));
});
if (goFile) {
  const poll = setInterval(() => {
    if (!existsSync(goFile)) return;
    clearInterval(poll);
    listen();
  }, 2);
} else {
  listen();
}
// A stopped container's process is gone at once: its sockets close with it.
process.on('SIGTERM', () => process.exit(0));
