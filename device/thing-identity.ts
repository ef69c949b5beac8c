/**
 * The identity a device holds once enrolled (thing name, certificate and private key) and how it
 * is kept on disk, as a device keeps it in its secure storage.
 */
import { chmod, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { TlsCredentials } from './mqtt-session';

/** Issued by fleet provisioning: the thing session's client id and credentials. */
export interface ThingIdentity {
  thingName: string;
  certificateId: string;
  credentials: TlsCredentials;
}

/**
 * Write `<thing>.cert.pem`, `<thing>.private.key` and `<thing>.json` (serial, thing name,
 * certificate id) into `dir` (created with mode 0700), each with mode 0600.
 */
export async function storeThingIdentity(
  dir: string,
  serial: string,
  identity: ThingIdentity,
): Promise<void> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const { thingName, certificateId, credentials } = identity;
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
