/**
 * AWS IoT control-plane adapter of the claim commands. The IoT client is injected; every call
 * is one SDK command, so the adapter is unit-tested with aws-sdk-client-mock and runs unchanged
 * against the lab's IoT facade (`AWS_ENDPOINT_URL_IOT`).
 */
import {
  AttachPolicyCommand,
  CreateKeysAndCertificateCommand,
  CreateThingGroupCommand,
  DescribeThingGroupCommand,
  IoTClient,
  UpdateCertificateCommand,
} from '@aws-sdk/client-iot';

export interface ClaimCertificate {
  certificateId: string;
  certificateArn: string;
  certificatePem: string;
  privateKey: string;
}

export type ClaimStatusChange = 'REVOKED' | 'INACTIVE';

export class ClaimIot {
  constructor(private readonly iot: IoTClient) {}

  /** CreateKeysAndCertificate, set active. The private key exists only in this response. */
  async createClaimCertificate(): Promise<ClaimCertificate> {
    const out = await this.iot.send(new CreateKeysAndCertificateCommand({ setAsActive: true }));
    if (!out.certificateId || !out.certificateArn || !out.certificatePem || !out.keyPair?.PrivateKey) {
      throw new Error('CreateKeysAndCertificate answered without a certificate id, ARN, PEM or private key');
    }
    return {
      certificateId: out.certificateId,
      certificateArn: out.certificateArn,
      certificatePem: out.certificatePem,
      privateKey: out.keyPair.PrivateKey,
    };
  }

  async attachPolicy(policyName: string, certificateArn: string): Promise<void> {
    await this.iot.send(new AttachPolicyCommand({ policyName, target: certificateArn }));
  }

  /**
   * Make sure the thing group exists. Returns true when this call created it. An existing group
   * (ResourceAlreadyExistsException, e.g. created with other properties) counts as present.
   */
  async ensureThingGroup(thingGroupName: string, attributes: Record<string, string>): Promise<boolean> {
    try {
      await this.iot.send(new DescribeThingGroupCommand({ thingGroupName }));
      return false;
    } catch (err) {
      if (errorName(err) !== 'ResourceNotFoundException') throw err;
    }
    try {
      await this.iot.send(
        new CreateThingGroupCommand({
          thingGroupName,
          thingGroupProperties: { attributePayload: { attributes, merge: true } },
        }),
      );
      return true;
    } catch (err) {
      if (errorName(err) === 'ResourceAlreadyExistsException') return false;
      throw err;
    }
  }

  /**
   * Set a certificate's status. `NOT_FOUND`: the certificate no longer exists; `STATE_CONFLICT`:
   * IoT refused the change (e.g. the certificate is already REVOKED). Both let the caller still
   * clean up its records; any other error is thrown.
   */
  async setCertificateStatus(
    certificateId: string,
    newStatus: ClaimStatusChange,
  ): Promise<'UPDATED' | 'NOT_FOUND' | 'STATE_CONFLICT'> {
    try {
      await this.iot.send(new UpdateCertificateCommand({ certificateId, newStatus }));
      return 'UPDATED';
    } catch (err) {
      if (errorName(err) === 'ResourceNotFoundException') return 'NOT_FOUND';
      if (errorName(err) === 'CertificateStateException') return 'STATE_CONFLICT';
      throw err;
    }
  }
}

export function errorName(err: unknown): string | undefined {
  return typeof err === 'object' && err !== null ? (err as { name?: string }).name : undefined;
}
