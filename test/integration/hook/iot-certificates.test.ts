/**
 * The hook's DescribeCertificate reader (lambda/shared/iot-certificates.ts) against the lab's IoT
 * control plane, side by side with the real `@aws-sdk/client-iot`: both must read the same status
 * for every state the hook's decision depends on, and agree on a certificate that does not exist.
 */
import {
  CreateKeysAndCertificateCommand,
  DeleteCertificateCommand,
  DescribeCertificateCommand,
  ResourceNotFoundException,
  UpdateCertificateCommand,
  type IoTClient,
} from '@aws-sdk/client-iot';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { createCertificateReader } from '../../../lambda/shared/clients';
import type { CertificateStatusReader } from '../../../lambda/shared/iot-certificates';
import type { IotCore } from '../../../lab/iot';
import { REGION, startCore } from '../lab-iot/helpers';

let core: IotCore;
let iot: IoTClient;
let dynamo: DynamoDBClient;
let read: CertificateStatusReader;
const signal = () => AbortSignal.timeout(5000);

beforeAll(async () => {
  ({ core, iot } = await startCore());
  dynamo = new DynamoDBClient({
    region: REGION,
    credentials: { accessKeyId: 'AKIDLOCALTEST', secretAccessKey: 'local-test-secret' },
  });
  read = createCertificateReader(
    { connectionTimeoutMs: 1000, requestTimeoutMs: 2000, maxAttempts: 2 },
    { config: { ...dynamo.config } },
  );
  process.env.AWS_ENDPOINT_URL_IOT = core.controlPlaneUrl;
});
afterAll(async () => {
  delete process.env.AWS_ENDPOINT_URL_IOT;
  iot.destroy();
  dynamo.destroy();
  await core.stop();
});

async function sdkStatus(certificateId: string): Promise<string | undefined> {
  try {
    const out = await iot.send(new DescribeCertificateCommand({ certificateId }));
    return out.certificateDescription?.status;
  } catch (err) {
    if (err instanceof ResourceNotFoundException) return undefined;
    throw err;
  }
}

test('reads the same status as the SDK client through every state the hook relies on', async () => {
  const { certificateId } = await iot.send(new CreateKeysAndCertificateCommand({ setAsActive: true }));
  const id = certificateId as string;
  const seen: Array<[string | undefined, string | undefined]> = [];
  seen.push([await read(id, signal()), await sdkStatus(id)]);
  await iot.send(new UpdateCertificateCommand({ certificateId: id, newStatus: 'INACTIVE' }));
  seen.push([await read(id, signal()), await sdkStatus(id)]);
  await iot.send(new UpdateCertificateCommand({ certificateId: id, newStatus: 'REVOKED' }));
  seen.push([await read(id, signal()), await sdkStatus(id)]);
  await iot.send(new DeleteCertificateCommand({ certificateId: id }));
  seen.push([await read(id, signal()), await sdkStatus(id)]);
  expect(seen).toEqual([
    ['ACTIVE', 'ACTIVE'],
    ['INACTIVE', 'INACTIVE'],
    ['REVOKED', 'REVOKED'],
    [undefined, undefined],
  ]);
});

test('a certificate id that never existed reads as not found, like the SDK', async () => {
  const id = 'a'.repeat(64);
  expect(await read(id, signal())).toBeUndefined();
  expect(await sdkStatus(id)).toBeUndefined();
});
