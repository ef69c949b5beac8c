/**
 * The identity a device holds once enrolled (thing name, certificate and private key) and how it
 * is kept on disk, as a device keeps it in its secure storage.
 */
import { chmod, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { SERIAL_SAFE } from '../core/model';
import type { TlsCredentials } from './mqtt-session';

/** Issued by fleet provisioning: the thing session's client id and credentials. */
export interface ThingIdentity {
  thingName: string;
  certificateId: string;
  credentials: TlsCredentials;
}

/** Longest AWS IoT thing name. */
export const MAX_THING_NAME_LENGTH = 128;

/**
 * Why `name` is not an AWS IoT thing name (`[a-zA-Z0-9:_-]{1,128}`), or undefined when it is one.
 * The thing name comes from the service's RegisterThing answer and becomes file names and a client
 * id, so nothing else (a path separator, `..`) may pass. The charset is core/model.ts
 * `SERIAL_SAFE`, the thing name charset.
 */
export function thingNameProblem(name: string): string | undefined {
  if (name.length === 0) return 'is empty';
  if (name.length > MAX_THING_NAME_LENGTH)
    return `is longer than ${MAX_THING_NAME_LENGTH} characters, so it is not an AWS IoT thing name`;
  if (!SERIAL_SAFE.test(name))
    return 'is not an AWS IoT thing name (only A-Z a-z 0-9 : _ -, at most 128 characters)';
  return undefined;
}

/**
 * Write `<thing>.cert.pem`, `<thing>.private.key` and `<thing>.json` (serial, thing name,
 * certificate id) into `dir` (created with mode 0700), each with mode 0600. Refuses a thing name
 * that is not one (a path separator or `..` would write outside `dir`).
 */
export async function storeThingIdentity(
  dir: string,
  serial: string,
  identity: ThingIdentity,
): Promise<void> {
  const { thingName, certificateId, credentials } = identity;
  const problem = thingNameProblem(thingName);
  // The charset has no `/`, `\` or `.`: a name that passes cannot leave `dir`.
  if (problem) {
    throw new Error(
      `refusing to store the identity of ${serial}: thing name ${JSON.stringify(thingName)} ${problem}`,
    );
  }
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const files: Array<[string, string]> = [
    [`${thingName}.cert.pem`, credentials.certPem],
    [`${thingName}.private.key`, credentials.keyPem],
    [`${thingName}.json`, JSON.stringify({ serial, thingName, certificateId }, null, 2)],
  ];
  for (const [name, content] of files) {
    const path = join(dir, name);
    await writeFile(path, content, { mode: 0o600 });
    await chmod(path, 0o600);
  }
}
