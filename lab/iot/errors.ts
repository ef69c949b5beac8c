/**
 * AWS IoT error shapes used by the control-plane facade and the provisioning MQTT API.
 * `code` is the AWS exception name (sent as `x-amzn-ErrorType`), `status` the HTTP status the
 * real service answers with, so `@aws-sdk/client-iot` raises the matching exception class.
 */
export class IotError extends Error {
  constructor(
    readonly code: string,
    readonly status: number,
    message: string,
  ) {
    super(message);
    this.name = code;
  }
}

export const notFound = (what: string): IotError => new IotError('ResourceNotFoundException', 404, what);
export const alreadyExists = (what: string): IotError =>
  new IotError('ResourceAlreadyExistsException', 409, what);
export const invalidRequest = (what: string): IotError => new IotError('InvalidRequestException', 400, what);
export const certificateState = (what: string): IotError =>
  new IotError('CertificateStateException', 406, what);
export const deleteConflict = (what: string): IotError => new IotError('DeleteConflictException', 409, what);
export const versionConflict = (what: string): IotError =>
  new IotError('VersionConflictException', 409, what);
