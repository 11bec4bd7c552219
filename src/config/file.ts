/** The optional config file of `padlock run` and friends: YAML (JSON is YAML too). */
import { readFile } from 'node:fs/promises';
import { parse as parseYaml } from 'yaml';
import { PadlockError, errorMessage } from '../errors.js';

/** Reads the config file: YAML (JSON is YAML too). */
export async function readConfigFile(path: string): Promise<Record<string, unknown>> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    throw new PadlockError('CONFIG_INVALID', `config file ${path}: cannot read it (${(err as NodeJS.ErrnoException).code ?? errorMessage(err)})`, { cause: err });
  }
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch (err) {
    throw new PadlockError('CONFIG_INVALID', `config file ${path}: not valid YAML or JSON: ${errorMessage(err)}`, { cause: err });
  }
  if (doc === null || doc === undefined) return {};
  if (typeof doc !== 'object' || Array.isArray(doc)) throw new PadlockError('CONFIG_INVALID', `config file ${path}: the top level must be a mapping of keys`);
  return doc as Record<string, unknown>;
}
