/**
 * AWS IoT control-plane adapters of the CLI: the claim commands ({@link ClaimIot}) and the
 * retirement of a device certificate by `fleet device reset` ({@link retireDeviceCertificate}).
 * The IoT client is injected; every call is one SDK command, so the adapters are unit-tested with
 * aws-sdk-client-mock and run unchanged against the lab's IoT facade (`AWS_ENDPOINT_URL_IOT`).
 */
import {
  AttachPolicyCommand,
  CreateKeysAndCertificateCommand,
  CreateThingGroupCommand,
  DescribeCertificateCommand,
  DescribeThingGroupCommand,
  DetachThingPrincipalCommand,
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

/**
 * What happened to a device's previous certificate in AWS IoT when the registry forgot it
 * (recorded on the STATUS_RESET trail entry as `detail.previousCertificate`):
 * - `revoked`: it existed and was not REVOKED; it is REVOKED now;
 * - `already-revoked`: it was REVOKED before;
 * - `not-found`: AWS IoT has no such certificate (deleted), so nobody can connect with it.
 */
export type PreviousCertificateOutcome = 'revoked' | 'already-revoked' | 'not-found';

/**
 * Make a device certificate unusable: DescribeCertificate; unless it is REVOKED already,
 * UpdateCertificate REVOKED; then DetachThingPrincipal from `thingName` (a thing or attachment
 * that no longer exists is fine). Idempotent: a second call answers `already-revoked` and detaches
 * again. Any other IoT error is thrown, so the caller changes nothing else.
 */
export async function retireDeviceCertificate(
  iot: IoTClient,
  certificateId: string,
  thingName: string,
): Promise<PreviousCertificateOutcome> {
  const before = await describeCertificate(iot, certificateId);
  if (!before) return 'not-found';
  let outcome: PreviousCertificateOutcome = 'already-revoked';
  if (before.status !== 'REVOKED') {
    try {
      await iot.send(new UpdateCertificateCommand({ certificateId, newStatus: 'REVOKED' }));
      outcome = 'revoked';
    } catch (err) {
      // Someone else revoked (or deleted) it since the read: that is the state asked for.
      if (errorName(err) === 'ResourceNotFoundException') return 'not-found';
      if (errorName(err) !== 'CertificateStateException') throw err;
      const now = await describeCertificate(iot, certificateId);
      if (!now) return 'not-found';
      if (now.status !== 'REVOKED') throw err;
    }
  }
  try {
    await iot.send(new DetachThingPrincipalCommand({ thingName, principal: before.certificateArn }));
  } catch (err) {
    if (errorName(err) !== 'ResourceNotFoundException') throw err;
  }
  return outcome;
}

/** Status and ARN of a certificate; undefined when AWS IoT has no such certificate. */
async function describeCertificate(
  iot: IoTClient,
  certificateId: string,
): Promise<{ status?: string; certificateArn: string } | undefined> {
  try {
    const out = await iot.send(new DescribeCertificateCommand({ certificateId }));
    const certificateArn = out.certificateDescription?.certificateArn;
    if (!certificateArn) {
      throw new Error(`DescribeCertificate answered without the ARN of certificate ${certificateId}`);
    }
    return { status: out.certificateDescription?.status, certificateArn };
  } catch (err) {
    if (errorName(err) === 'ResourceNotFoundException') return undefined;
    throw err;
  }
}

export function errorName(err: unknown): string | undefined {
  return typeof err === 'object' && err !== null ? (err as { name?: string }).name : undefined;
}
