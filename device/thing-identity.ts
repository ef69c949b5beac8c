/**
 * The identity a device holds once enrolled (thing name, certificate and private key) and how it
 * is kept on disk, as a device keeps it in its secure storage.
 */
import { chmod, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { thingNameProblem } from '../core/model';
import type { TlsCredentials } from './mqtt-session';

/** Issued by fleet provisioning: the thing session's client id and credentials. */
export interface ThingIdentity {
  thingName: string;
  certificateId: string;
  credentials: TlsCredentials;
}

export { thingNameProblem } from '../core/model';

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
