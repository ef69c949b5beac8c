/** Certificates: CreateKeysAndCertificate, DescribeCertificate, UpdateCertificate, DeleteCertificate, ListCertificates. */
import { epoch, page, requireStr } from './fields';
import type { ControlPlaneDeps, Router } from './router';

export function registerCertificateOperations(router: Router, { registry: reg, ca }: ControlPlaneDeps): void {
  const describe = (id: string): Record<string, unknown> => {
    const c = reg.getCertificate(id);
    return {
      certificateArn: c.certificateArn,
      certificateId: c.certificateId,
      caCertificateId: c.caCertificateId,
      status: c.status,
      certificatePem: c.certificatePem,
      ownedBy: reg.accountId,
      creationDate: epoch(c.creationDate),
      lastModifiedDate: epoch(c.lastModifiedDate),
      customerVersion: 1,
      generationId: String(c.lastModifiedDate.getTime()),
      validity: { notBefore: epoch(c.creationDate), notAfter: Date.parse('2049-12-31T23:59:59Z') / 1000 },
      certificateMode: 'DEFAULT',
    };
  };

  router.add('CreateKeysAndCertificate', 'POST', '/keys-and-certificate', async ({ query }) => {
    const issued = await ca.issueWithNewKeys();
    const rec = reg.addCertificate({
      certificateId: issued.certificateId,
      certificatePem: issued.certificatePem,
      status: query.get('setAsActive') === 'true' ? 'ACTIVE' : 'INACTIVE',
      caCertificateId: ca.caCertificateId,
    });
    return {
      certificateArn: rec.certificateArn,
      certificateId: rec.certificateId,
      certificatePem: rec.certificatePem,
      keyPair: { PublicKey: issued.publicKeyPem, PrivateKey: issued.privateKeyPem },
    };
  });
  router.add('DescribeCertificate', 'GET', '/certificates/{certificateId}', ({ params }) => ({
    certificateDescription: describe(params.certificateId),
  }));
  router.add('UpdateCertificate', 'PUT', '/certificates/{certificateId}', ({ params, query }) => {
    reg.updateCertificateStatus(params.certificateId, requireStr(query.get('newStatus'), 'newStatus'));
    return {};
  });
  router.add('DeleteCertificate', 'DELETE', '/certificates/{certificateId}', ({ params, query }) => {
    reg.deleteCertificate(params.certificateId, query.get('forceDelete') === 'true');
    return {};
  });
  router.add('ListCertificates', 'GET', '/certificates', ({ query }) => {
    const all = [...reg.certificates.values()].sort(
      (a, b) => a.creationDate.getTime() - b.creationDate.getTime(),
    );
    if (query.get('isAscendingOrder') !== 'true') all.reverse();
    const p = page(all, query.get('marker'), query.get('pageSize'));
    return {
      certificates: p.items.map((c) => ({
        certificateArn: c.certificateArn,
        certificateId: c.certificateId,
        status: c.status,
        certificateMode: 'DEFAULT',
        creationDate: epoch(c.creationDate),
      })),
      nextMarker: p.next,
    };
  });
}
