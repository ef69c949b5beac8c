/**
 * Software Package Catalog: CreatePackage, GetPackage, CreatePackageVersion, GetPackageVersion,
 * UpdatePackageVersion, ListPackageVersions, with the methods and paths of `@aws-sdk/client-iot`.
 *
 * A version starts in DRAFT; UpdatePackageVersion `action: PUBLISH` moves DRAFT to PUBLISHED and
 * `DEPRECATE` PUBLISHED (or DRAFT) to DEPRECATED; PUBLISH of a DEPRECATED version brings it back.
 * Attributes, artifact, recipe and description of a PUBLISHED or DEPRECATED version are fixed
 * (AWS: only draft versions can be edited), as the `fleet firmware publish` contract relies on.
 * The catalog lives with the control plane (one per lab), in memory.
 */
import { invalidRequest, IotError, notFound } from '../errors';
import { epoch, page, str } from './fields';
import type { ControlPlaneDeps, Router } from './router';

export const PACKAGE_VERSION_STATUSES = ['DRAFT', 'PUBLISHED', 'DEPRECATED'] as const;
export type PackageVersionStatus = (typeof PACKAGE_VERSION_STATUSES)[number];

interface S3Location {
  bucket?: string;
  key?: string;
  version?: string;
}

interface PackageVersion {
  versionName: string;
  description?: string;
  attributes: Record<string, string>;
  artifact?: { s3Location?: S3Location };
  recipe?: string;
  status: PackageVersionStatus;
  creationDate: Date;
  lastModifiedDate: Date;
}

interface SoftwarePackage {
  packageName: string;
  description?: string;
  defaultVersionName?: string;
  creationDate: Date;
  lastModifiedDate: Date;
  versions: Map<string, PackageVersion>;
}

const NAME_RE = /^[a-zA-Z0-9-_.]{1,128}$/;
const VERSION_RE = /^[a-zA-Z0-9-_.]{1,64}$/;
const ATTR_KEY_RE = /^[a-zA-Z0-9:_-]+$/;
const MAX_ATTRIBUTES_BYTES = 3072;

const conflict = (what: string): IotError => new IotError('ConflictException', 409, what);

function checkAttributes(value: unknown): Record<string, string> {
  if (value === undefined) return {};
  if (!value || typeof value !== 'object' || Array.isArray(value))
    throw invalidRequest('attributes must be a map');
  const out: Record<string, string> = {};
  let bytes = 0;
  for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
    if (!ATTR_KEY_RE.test(k)) throw invalidRequest(`attribute key ${k} does not match [a-zA-Z0-9:_-]+`);
    if (typeof v !== 'string' || v.length === 0 || /\p{Cc}/u.test(v))
      throw invalidRequest(`attribute ${k} must be a non-empty string without control characters`);
    bytes += Buffer.byteLength(k) + Buffer.byteLength(v);
    out[k] = v;
  }
  if (bytes > MAX_ATTRIBUTES_BYTES)
    throw invalidRequest(`attributes take ${bytes} bytes; the combined limit is ${MAX_ATTRIBUTES_BYTES}`);
  return out;
}

export function registerPackageOperations(router: Router, { registry: reg }: ControlPlaneDeps): void {
  const packages = new Map<string, SoftwarePackage>();
  const packageArn = (name: string) => reg.arn(`package/${name}`);
  const versionArn = (name: string, version: string) => reg.arn(`package/${name}/version/${version}`);
  const getPackage = (name: string): SoftwarePackage => {
    const p = packages.get(name);
    if (!p) throw notFound(`package ${name} does not exist`);
    return p;
  };
  const getVersion = (name: string, version: string): PackageVersion => {
    const v = getPackage(name).versions.get(version);
    if (!v) throw notFound(`package version ${name}/${version} does not exist`);
    return v;
  };

  router.add('CreatePackage', 'PUT', '/packages/{packageName}', ({ params, body }) => {
    const name = params.packageName;
    if (!NAME_RE.test(name)) throw invalidRequest(`packageName ${name} does not match [a-zA-Z0-9-_.]{1,128}`);
    const existing = packages.get(name);
    if (existing) throw conflict(`package ${name} already exists`);
    const now = new Date();
    const p: SoftwarePackage = {
      packageName: name,
      description: str(body, 'description'),
      creationDate: now,
      lastModifiedDate: now,
      versions: new Map(),
    };
    packages.set(name, p);
    return { packageName: name, packageArn: packageArn(name), description: p.description };
  });

  router.add('GetPackage', 'GET', '/packages/{packageName}', ({ params }) => {
    const p = getPackage(params.packageName);
    return {
      packageName: p.packageName,
      packageArn: packageArn(p.packageName),
      description: p.description,
      defaultVersionName: p.defaultVersionName,
      creationDate: epoch(p.creationDate),
      lastModifiedDate: epoch(p.lastModifiedDate),
    };
  });

  router.add(
    'CreatePackageVersion',
    'PUT',
    '/packages/{packageName}/versions/{versionName}',
    ({ params, body }) => {
      const p = getPackage(params.packageName);
      const name = params.versionName;
      if (!VERSION_RE.test(name))
        throw invalidRequest(`versionName ${name} does not match [a-zA-Z0-9-_.]{1,64}`);
      if (p.versions.has(name)) throw conflict(`package version ${p.packageName}/${name} already exists`);
      const now = new Date();
      const v: PackageVersion = {
        versionName: name,
        description: str(body, 'description'),
        attributes: checkAttributes(body.attributes),
        artifact: body.artifact as PackageVersion['artifact'],
        recipe: str(body, 'recipe'),
        status: 'DRAFT',
        creationDate: now,
        lastModifiedDate: now,
      };
      p.versions.set(name, v);
      return {
        packageVersionArn: versionArn(p.packageName, name),
        packageName: p.packageName,
        versionName: name,
        description: v.description,
        attributes: v.attributes,
        status: v.status,
      };
    },
  );

  router.add('GetPackageVersion', 'GET', '/packages/{packageName}/versions/{versionName}', ({ params }) => {
    const v = getVersion(params.packageName, params.versionName);
    return {
      packageVersionArn: versionArn(params.packageName, v.versionName),
      packageName: params.packageName,
      versionName: v.versionName,
      description: v.description,
      attributes: v.attributes,
      artifact: v.artifact,
      recipe: v.recipe,
      status: v.status,
      creationDate: epoch(v.creationDate),
      lastModifiedDate: epoch(v.lastModifiedDate),
    };
  });

  router.add(
    'UpdatePackageVersion',
    'PATCH',
    '/packages/{packageName}/versions/{versionName}',
    ({ params, body }) => {
      const v = getVersion(params.packageName, params.versionName);
      const action = str(body, 'action');
      const edits = ['description', 'attributes', 'artifact', 'recipe'].filter((k) => body[k] !== undefined);
      if (edits.length > 0 && v.status !== 'DRAFT')
        throw conflict(
          `package version ${params.packageName}/${v.versionName} is ${v.status}; only a DRAFT can change ${edits.join(', ')}`,
        );
      if (body.attributes !== undefined)
        v.attributes = { ...v.attributes, ...checkAttributes(body.attributes) };
      if (body.description !== undefined) v.description = str(body, 'description');
      if (body.artifact !== undefined) v.artifact = body.artifact as PackageVersion['artifact'];
      if (body.recipe !== undefined) v.recipe = str(body, 'recipe');
      if (action === 'PUBLISH') v.status = 'PUBLISHED';
      else if (action === 'DEPRECATE') v.status = 'DEPRECATED';
      else if (action !== undefined) throw invalidRequest(`action ${action} is not PUBLISH or DEPRECATE`);
      v.lastModifiedDate = new Date();
      return {};
    },
  );

  router.add('ListPackageVersions', 'GET', '/packages/{packageName}/versions', ({ params, query }) => {
    const p = getPackage(params.packageName);
    const status = query.get('status');
    if (status !== null && !(PACKAGE_VERSION_STATUSES as readonly string[]).includes(status))
      throw invalidRequest(`status ${status} is not one of ${PACKAGE_VERSION_STATUSES.join(', ')}`);
    const all = [...p.versions.values()].filter((v) => status === null || v.status === status);
    const pg = page(all, query.get('nextToken'), query.get('maxResults'));
    return {
      packageVersionSummaries: pg.items.map((v) => ({
        packageName: p.packageName,
        versionName: v.versionName,
        status: v.status,
        creationDate: epoch(v.creationDate),
        lastModifiedDate: epoch(v.lastModifiedDate),
      })),
      nextToken: pg.next,
    };
  });
}
