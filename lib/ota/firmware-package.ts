import * as iot from 'aws-cdk-lib/aws-iot';
import { Construct } from 'constructs';

/** Stable CloudFormation logical id of the firmware package (a test pins it). */
export const FIRMWARE_PACKAGE_LOGICAL_ID = 'FirmwarePackage';

const PACKAGE_NAME_RE = /^[a-zA-Z0-9_.-]{1,128}$/;

export interface FirmwarePackageProps {
  /** Package name in the Software Package Catalog: fixed, devices' `$package` shadow names it. */
  readonly packageName: string;
  /** Description. @default 'Device firmware' */
  readonly description?: string;
}

/**
 * The firmware's package in the AWS IoT Software Package Catalog. Versions are not declared
 * here: `fleet firmware publish` creates each version and publishes it through the API
 * (CloudFormation creates versions only as drafts, which jobs cannot name).
 */
export class FirmwarePackage extends Construct {
  public readonly package: iot.CfnSoftwarePackage;
  public readonly packageName: string;

  constructor(scope: Construct, id: string, props: FirmwarePackageProps) {
    super(scope, id);
    if (!PACKAGE_NAME_RE.test(props.packageName)) {
      throw new Error(
        `FirmwarePackage: packageName "${props.packageName}" is invalid; use 1-128 characters of a-z A-Z 0-9 _ . -`,
      );
    }
    this.packageName = props.packageName;
    this.package = new iot.CfnSoftwarePackage(this, 'Resource', {
      packageName: props.packageName,
      description: props.description ?? 'Device firmware',
    });
    this.package.overrideLogicalId(FIRMWARE_PACKAGE_LOGICAL_ID);
  }

  /** ARN of the package (`arn:…:package/<name>`). */
  public get packageArn(): string {
    return this.package.attrPackageArn;
  }
}
