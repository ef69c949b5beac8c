/**
 * The lab's Software Package Catalog through the real `@aws-sdk/client-iot`: packages and
 * versions, DRAFT -> PUBLISHED -> DEPRECATED, edits refused once published, listing by status
 * with pages, and AWS's exception classes.
 */
import {
  ConflictException,
  CreatePackageCommand,
  CreatePackageVersionCommand,
  GetPackageCommand,
  GetPackageVersionCommand,
  InvalidRequestException,
  ListPackageVersionsCommand,
  ResourceNotFoundException,
  UpdatePackageVersionCommand,
  type IoTClient,
} from '@aws-sdk/client-iot';
import type { IotCore } from '../../../lab/iot';
import { ACCOUNT, REGION, startCore, stopCore } from './helpers';

let core: IotCore;
let iot: IoTClient;

beforeAll(async () => {
  ({ core, iot } = await startCore());
});
afterAll(() => stopCore(core, iot));

describe('package catalog', () => {
  test('create and get a package; a second create conflicts', async () => {
    const created = await iot.send(
      new CreatePackageCommand({ packageName: 'fw-a', description: 'firmware' }),
    );
    expect(created).toMatchObject({
      packageName: 'fw-a',
      packageArn: `arn:aws:iot:${REGION}:${ACCOUNT}:package/fw-a`,
      description: 'firmware',
    });
    const got = await iot.send(new GetPackageCommand({ packageName: 'fw-a' }));
    expect(got.packageArn).toBe(created.packageArn);
    expect(got.creationDate).toBeInstanceOf(Date);
    await expect(iot.send(new CreatePackageCommand({ packageName: 'fw-a' }))).rejects.toBeInstanceOf(
      ConflictException,
    );
    await expect(iot.send(new GetPackageCommand({ packageName: 'nope' }))).rejects.toBeInstanceOf(
      ResourceNotFoundException,
    );
  });

  test('a version starts as DRAFT with its attributes and artifact, then is published and deprecated', async () => {
    await iot.send(new CreatePackageCommand({ packageName: 'fw-b' }));
    const v = await iot.send(
      new CreatePackageVersionCommand({
        packageName: 'fw-b',
        versionName: '1.2.3',
        attributes: { sha256: 'ab'.repeat(32), sizeBytes: '1024' },
        artifact: { s3Location: { bucket: 'b', key: 'firmware/1.2.3/image.bin', version: 'v1' } },
      }),
    );
    expect(v).toMatchObject({
      packageVersionArn: `arn:aws:iot:${REGION}:${ACCOUNT}:package/fw-b/version/1.2.3`,
      status: 'DRAFT',
      attributes: { sha256: 'ab'.repeat(32), sizeBytes: '1024' },
    });
    await iot.send(
      new UpdatePackageVersionCommand({
        packageName: 'fw-b',
        versionName: '1.2.3',
        attributes: { hwRevs: 'A,B' },
      }),
    );
    await iot.send(
      new UpdatePackageVersionCommand({ packageName: 'fw-b', versionName: '1.2.3', action: 'PUBLISH' }),
    );
    const got = await iot.send(new GetPackageVersionCommand({ packageName: 'fw-b', versionName: '1.2.3' }));
    expect(got).toMatchObject({
      status: 'PUBLISHED',
      attributes: { sha256: 'ab'.repeat(32), sizeBytes: '1024', hwRevs: 'A,B' },
      artifact: { s3Location: { bucket: 'b', key: 'firmware/1.2.3/image.bin', version: 'v1' } },
    });
    await expect(
      iot.send(
        new UpdatePackageVersionCommand({
          packageName: 'fw-b',
          versionName: '1.2.3',
          attributes: { sha256: 'cd' },
        }),
      ),
    ).rejects.toBeInstanceOf(ConflictException);
    await iot.send(
      new UpdatePackageVersionCommand({ packageName: 'fw-b', versionName: '1.2.3', action: 'DEPRECATE' }),
    );
    expect(
      (await iot.send(new GetPackageVersionCommand({ packageName: 'fw-b', versionName: '1.2.3' }))).status,
    ).toBe('DEPRECATED');
    await expect(
      iot.send(new CreatePackageVersionCommand({ packageName: 'fw-b', versionName: '1.2.3' })),
    ).rejects.toBeInstanceOf(ConflictException);
  });

  test('list versions by status, in pages', async () => {
    await iot.send(new CreatePackageCommand({ packageName: 'fw-c' }));
    for (const name of ['1.0.0', '1.1.0', '1.2.0']) {
      await iot.send(new CreatePackageVersionCommand({ packageName: 'fw-c', versionName: name }));
    }
    await iot.send(
      new UpdatePackageVersionCommand({ packageName: 'fw-c', versionName: '1.1.0', action: 'PUBLISH' }),
    );
    const published = await iot.send(
      new ListPackageVersionsCommand({ packageName: 'fw-c', status: 'PUBLISHED' }),
    );
    expect(published.packageVersionSummaries?.map((s) => [s.versionName, s.status])).toEqual([
      ['1.1.0', 'PUBLISHED'],
    ]);
    const first = await iot.send(new ListPackageVersionsCommand({ packageName: 'fw-c', maxResults: 2 }));
    expect(first.packageVersionSummaries).toHaveLength(2);
    const second = await iot.send(
      new ListPackageVersionsCommand({ packageName: 'fw-c', maxResults: 2, nextToken: first.nextToken }),
    );
    expect(second.packageVersionSummaries?.map((s) => s.versionName)).toEqual(['1.2.0']);
    expect(second.nextToken).toBeUndefined();
  });

  test('invalid names, attributes and actions are InvalidRequestException; unknown versions ResourceNotFound', async () => {
    await expect(iot.send(new CreatePackageCommand({ packageName: 'a b' }))).rejects.toBeInstanceOf(
      InvalidRequestException,
    );
    await iot.send(new CreatePackageCommand({ packageName: 'fw-d' }));
    await expect(
      iot.send(
        new CreatePackageVersionCommand({
          packageName: 'fw-d',
          versionName: '1.0.0',
          attributes: { 'bad key': 'x' },
        }),
      ),
    ).rejects.toBeInstanceOf(InvalidRequestException);
    await expect(
      iot.send(
        new CreatePackageVersionCommand({
          packageName: 'fw-d',
          versionName: '1.0.0',
          attributes: { big: 'x'.repeat(3100) },
        }),
      ),
    ).rejects.toThrow(/combined limit is 3072/);
    await expect(
      iot.send(new GetPackageVersionCommand({ packageName: 'fw-d', versionName: '9.9.9' })),
    ).rejects.toBeInstanceOf(ResourceNotFoundException);
    await expect(
      iot.send(new ListPackageVersionsCommand({ packageName: 'fw-d', status: 'GONE' as never })),
    ).rejects.toBeInstanceOf(InvalidRequestException);
  });
});
