/**
 * Software Package Catalog substitution parameters in job documents (AWS IoT Developer Guide,
 * "Preparing AWS IoT Jobs"): `${aws:iot:package:<package>:version:<version>:attributes:<key>}`
 * takes a package version's attribute; empty package and version names
 * (`${aws:iot:package::version::attributes:<key>}`) mean the job's single
 * `destinationPackageVersions` entry. The Jobs service substitutes them when the job is created
 * (GetJobDocument `beforeSubstitution=true` returns the original) and checks that every
 * destination package version exists and is PUBLISHED or DEPRECATED.
 */
import { invalidRequest } from '../errors';

/** A package version as the catalog's GetPackageVersion answers, or undefined when it does not exist. */
export type PackageVersionLookup = (
  packageName: string,
  versionName: string,
) => Promise<{ status?: string; attributes?: Record<string, string> } | undefined>;

const PARAMETER = /\$\{aws:iot:package:([^:}]*):version:([^:}]*):attributes(?::([^}]+))?\}/g;
const VERSION_ARN = /^arn:aws[\w-]*:iot:[^:]*:[^:]*:package\/([^/]+)\/version\/(.+)$/;

/** Package and version of a package version ARN. */
function parseVersionArn(arn: string): { packageName: string; versionName: string } {
  const m = VERSION_ARN.exec(arn);
  if (!m) throw invalidRequest(`destinationPackageVersions: ${arn} is not a package version ARN`);
  return { packageName: m[1], versionName: m[2] };
}

/** The document with its package substitution parameters replaced; throws naming what is missing. */
export async function substitutePackageParameters(
  document: string,
  destinationPackageVersions: string[] | undefined,
  lookup: PackageVersionLookup,
): Promise<string> {
  const destinations = (destinationPackageVersions ?? []).map(parseVersionArn);
  const versions = new Map<string, Record<string, string>>();
  const load = async (packageName: string, versionName: string): Promise<Record<string, string>> => {
    const id = `${packageName}/${versionName}`;
    const cached = versions.get(id);
    if (cached) return cached;
    const v = await lookup(packageName, versionName);
    if (!v) throw invalidRequest(`Package version ${id} does not exist`);
    if (v.status !== 'PUBLISHED' && v.status !== 'DEPRECATED')
      throw invalidRequest(
        `Package version ${id} is ${v.status ?? 'unknown'}: publish it before deploying it`,
      );
    versions.set(id, v.attributes ?? {});
    return v.attributes ?? {};
  };
  for (const d of destinations) await load(d.packageName, d.versionName);

  const found = [...document.matchAll(PARAMETER)];
  const values = new Map<string, string>();
  for (const [whole, pkg, ver, key] of found) {
    if (values.has(whole)) continue;
    let target = { packageName: pkg, versionName: ver };
    if (!pkg || !ver) {
      if (destinations.length !== 1)
        throw invalidRequest(
          `${whole} needs exactly one destinationPackageVersions entry (the job has ${destinations.length})`,
        );
      target = {
        packageName: pkg || destinations[0].packageName,
        versionName: ver || destinations[0].versionName,
      };
    }
    const attributes = await load(target.packageName, target.versionName);
    if (key === undefined) {
      values.set(whole, JSON.stringify(JSON.stringify(attributes)).slice(1, -1));
      continue;
    }
    const value = attributes[key];
    if (value === undefined)
      throw invalidRequest(
        `${whole}: package version ${target.packageName}/${target.versionName} has no attribute ${key}`,
      );
    // The document is JSON text and parameters sit inside JSON strings: escape as a string body.
    values.set(whole, JSON.stringify(value).slice(1, -1));
  }
  return document.replace(PARAMETER, (whole) => values.get(whole) ?? whole);
}
