import {
  AddThingToThingGroupCommand,
  AttachPolicyCommand,
  AttachThingPrincipalCommand,
  CertificateStateException,
  CreateKeysAndCertificateCommand,
  CreatePolicyCommand,
  CreateThingCommand,
  CreateThingGroupCommand,
  DeleteCertificateCommand,
  DeleteConflictException,
  DeleteThingCommand,
  DescribeCertificateCommand,
  DescribeEndpointCommand,
  DescribeProvisioningTemplateCommand,
  DescribeThingCommand,
  DescribeThingGroupCommand,
  DetachPolicyCommand,
  DetachThingPrincipalCommand,
  GetPolicyCommand,
  IoTServiceException,
  ListAttachedPoliciesCommand,
  ListCertificatesCommand,
  ListPrincipalThingsCommand,
  ListProvisioningTemplatesCommand,
  ListTargetsForPolicyCommand,
  ListThingGroupsForThingCommand,
  ListThingPrincipalsCommand,
  ListThingsCommand,
  ListThingsInThingGroupCommand,
  RemoveThingFromThingGroupCommand,
  ResourceAlreadyExistsException,
  ResourceNotFoundException,
  UpdateCertificateCommand,
  UpdateThingCommand,
  ListAuditFindingsCommand,
  type IoTClient,
} from '@aws-sdk/client-iot';
import type { IotCore } from '../../../lab/iot';
import { startCore } from './helpers';

let core: IotCore;
let iot: IoTClient;

beforeAll(async () => {
  ({ core, iot } = await startCore());
  core.registry.putThingType('sensor-v1');
  core.registry.putProvisioningTemplate({
    name: 'fleet-tpl',
    body: '{"Resources":{}}',
    enabled: true,
    hookArn: 'arn:aws:lambda:us-east-1:123456789012:function:hook',
  });
});
afterAll(async () => {
  iot.destroy();
  await core.stop();
});

describe('control plane with the real @aws-sdk/client-iot', () => {
  test('certificate lifecycle: create, describe, list, update, delete', async () => {
    const created = await iot.send(new CreateKeysAndCertificateCommand({ setAsActive: true }));
    expect(created.certificateId).toMatch(/^[0-9a-f]{64}$/);
    expect(created.keyPair?.PrivateKey).toContain('BEGIN PRIVATE KEY');
    expect(created.certificateArn).toBe(`arn:aws:iot:us-east-1:123456789012:cert/${created.certificateId}`);
    const id = created.certificateId as string;

    const d = await iot.send(new DescribeCertificateCommand({ certificateId: id }));
    expect(d.certificateDescription?.status).toBe('ACTIVE');
    expect(d.certificateDescription?.creationDate).toBeInstanceOf(Date);

    const list = await iot.send(new ListCertificatesCommand({}));
    expect(list.certificates?.map((c) => c.certificateId)).toContain(id);

    await expect(iot.send(new DeleteCertificateCommand({ certificateId: id }))).rejects.toBeInstanceOf(
      CertificateStateException,
    );
    await iot.send(
      new CreatePolicyCommand({ policyName: 'p-del', policyDocument: JSON.stringify({ Statement: [] }) }),
    );
    await iot.send(new AttachPolicyCommand({ policyName: 'p-del', target: created.certificateArn }));
    await iot.send(new UpdateCertificateCommand({ certificateId: id, newStatus: 'INACTIVE' }));
    await expect(iot.send(new DeleteCertificateCommand({ certificateId: id }))).rejects.toBeInstanceOf(
      DeleteConflictException,
    );
    await iot.send(new DetachPolicyCommand({ policyName: 'p-del', target: created.certificateArn }));
    await iot.send(new DeleteCertificateCommand({ certificateId: id }));
    await expect(iot.send(new DescribeCertificateCommand({ certificateId: id }))).rejects.toBeInstanceOf(
      ResourceNotFoundException,
    );
  });

  test('policies: create, get, attach, list attached and targets; duplicates are 409', async () => {
    const cert = await iot.send(new CreateKeysAndCertificateCommand({ setAsActive: false }));
    const doc = JSON.stringify({
      Version: '2012-10-17',
      Statement: [{ Effect: 'Allow', Action: 'iot:*', Resource: '*' }],
    });
    const p = await iot.send(new CreatePolicyCommand({ policyName: 'p1', policyDocument: doc }));
    expect(p.policyArn).toBe('arn:aws:iot:us-east-1:123456789012:policy/p1');
    await expect(
      iot.send(new CreatePolicyCommand({ policyName: 'p1', policyDocument: doc })),
    ).rejects.toBeInstanceOf(ResourceAlreadyExistsException);
    expect((await iot.send(new GetPolicyCommand({ policyName: 'p1' }))).policyDocument).toBe(doc);
    await iot.send(new AttachPolicyCommand({ policyName: 'p1', target: cert.certificateArn }));
    const attached = await iot.send(new ListAttachedPoliciesCommand({ target: cert.certificateArn }));
    expect(attached.policies?.map((x) => x.policyName)).toEqual(['p1']);
    const targets = await iot.send(new ListTargetsForPolicyCommand({ policyName: 'p1' }));
    expect(targets.targets).toEqual([cert.certificateArn]);
    await expect(iot.send(new GetPolicyCommand({ policyName: 'nope' }))).rejects.toBeInstanceOf(
      ResourceNotFoundException,
    );
  });

  test('things, principals and thing groups', async () => {
    const cert = await iot.send(new CreateKeysAndCertificateCommand({ setAsActive: true }));
    const t = await iot.send(
      new CreateThingCommand({
        thingName: 'fleet-A1',
        thingTypeName: 'sensor-v1',
        attributePayload: { attributes: { lot: 'L1' } },
      }),
    );
    expect(t.thingArn).toBe('arn:aws:iot:us-east-1:123456789012:thing/fleet-A1');
    await iot.send(
      new UpdateThingCommand({
        thingName: 'fleet-A1',
        attributePayload: { attributes: { ring: 'canary' }, merge: true },
      }),
    );
    const d = await iot.send(new DescribeThingCommand({ thingName: 'fleet-A1' }));
    expect(d.attributes).toEqual({ lot: 'L1', ring: 'canary' });
    expect(d.version).toBe(2);
    expect(d.thingTypeName).toBe('sensor-v1');

    const listed = await iot.send(new ListThingsCommand({ attributeName: 'lot', attributeValue: 'L1' }));
    expect(listed.things?.map((x) => x.thingName)).toEqual(['fleet-A1']);

    await iot.send(
      new AttachThingPrincipalCommand({ thingName: 'fleet-A1', principal: cert.certificateArn }),
    );
    expect((await iot.send(new ListThingPrincipalsCommand({ thingName: 'fleet-A1' }))).principals).toEqual([
      cert.certificateArn,
    ]);
    expect(
      (await iot.send(new ListPrincipalThingsCommand({ principal: cert.certificateArn }))).things,
    ).toEqual(['fleet-A1']);

    const g = await iot.send(new CreateThingGroupCommand({ thingGroupName: 'fleet-ring-canary' }));
    expect(g.thingGroupArn).toContain(':thinggroup/fleet-ring-canary');
    await iot.send(
      new CreateThingGroupCommand({ thingGroupName: 'fleet-sub', parentGroupName: 'fleet-ring-canary' }),
    );
    await iot.send(new AddThingToThingGroupCommand({ thingGroupName: 'fleet-sub', thingName: 'fleet-A1' }));
    const dg = await iot.send(new DescribeThingGroupCommand({ thingGroupName: 'fleet-sub' }));
    expect(dg.thingGroupMetadata?.parentGroupName).toBe('fleet-ring-canary');
    expect(
      (await iot.send(new ListThingGroupsForThingCommand({ thingName: 'fleet-A1' }))).thingGroups?.[0]
        ?.groupName,
    ).toBe('fleet-sub');
    expect(
      (
        await iot.send(
          new ListThingsInThingGroupCommand({ thingGroupName: 'fleet-ring-canary', recursive: true }),
        )
      ).things,
    ).toEqual(['fleet-A1']);
    await iot.send(
      new RemoveThingFromThingGroupCommand({ thingGroupName: 'fleet-sub', thingName: 'fleet-A1' }),
    );
    expect(
      (await iot.send(new ListThingsInThingGroupCommand({ thingGroupName: 'fleet-sub' }))).things,
    ).toEqual([]);

    await iot.send(
      new DetachThingPrincipalCommand({ thingName: 'fleet-A1', principal: cert.certificateArn }),
    );
    await iot.send(new DeleteThingCommand({ thingName: 'fleet-A1' }));
    await expect(iot.send(new DescribeThingCommand({ thingName: 'fleet-A1' }))).rejects.toBeInstanceOf(
      ResourceNotFoundException,
    );
  });

  test('endpoint and provisioning templates', async () => {
    const e = await iot.send(new DescribeEndpointCommand({ endpointType: 'iot:Data-ATS' }));
    expect(e.endpointAddress).toBe(`${core.mqtt.host}:${core.mqtt.port}`);
    const t = await iot.send(new DescribeProvisioningTemplateCommand({ templateName: 'fleet-tpl' }));
    expect(t.enabled).toBe(true);
    expect(t.preProvisioningHook?.targetArn).toContain(':function:hook');
    const l = await iot.send(new ListProvisioningTemplatesCommand({}));
    expect(l.templates?.map((x) => x.templateName)).toEqual(['fleet-tpl']);
  });

  test('an operation the lab does not serve names itself', async () => {
    const err = await iot.send(new ListAuditFindingsCommand({})).catch((x: unknown) => x);
    expect(err).toBeInstanceOf(IoTServiceException);
    expect((err as Error).name).toBe('NotImplementedException');
    expect((err as Error).message).toContain('ListAuditFindings');
  });
});
