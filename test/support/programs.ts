import { accessSync, constants as fsConstants } from 'node:fs';
import { join, delimiter } from 'node:path';

/** The full path of an executable on PATH (or in /usr/sbin and /sbin, where daemons live), if any. */
export function onPath(cmd: string): string | undefined {
  for (const d of [...(process.env.PATH ?? '').split(delimiter), '/usr/sbin', '/sbin']) {
    if (!d) continue;
    try {
      accessSync(join(d, cmd), fsConstants.X_OK);
      return join(d, cmd);
    } catch {
      /* not here */
    }
  }
  return undefined;
}

/** Like onPath, but a missing program fails the test with the Debian package to install. */
export function requireProgram(cmd: string, pkg: string, why: string): string {
  const p = onPath(cmd);
  if (!p) throw new Error(`test harness: the program "${cmd}" (${why}) is missing; install the Debian package: apt-get install ${pkg}`);
  return p;
}
