/**
 * What a device checks before it installs a firmware image: the hardware revision the job names,
 * then the image it downloaded against the job document (size, SHA-256, and the ECDSA P-256
 * signature over the image with the operator's public key, core/ota.ts). The checks are pure; the
 * download is a plain GET on the presigned URL (https on AWS, http on loopback in the lab).
 */
import { createHash, createPublicKey, createSign, createVerify, type KeyObject } from 'node:crypto';
import { FIRMWARE_SIGNATURE_ALGORITHM, type FirmwareJobDocument } from '../core/ota';

/** Why an image was refused: `size`, `sha256` or `signature`. */
export type ImageCheck = 'size' | 'sha256' | 'signature';

/** The outcome of {@link verifyFirmwareImage}. */
export type ImageVerdict = { ok: true } | { ok: false; check: ImageCheck; reason: string };

/** The hex SHA-256 of `bytes`. */
export function sha256Hex(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/**
 * Verifies `bytes` against the document's `image`: its length, its SHA-256 and its signature
 * (ECDSA P-256 over the image with SHA-256, base64 DER) with `publicKey` (PEM or KeyObject). The
 * first check that fails is named.
 */
export function verifyFirmwareImage(
  bytes: Uint8Array,
  image: FirmwareJobDocument['image'],
  publicKey: string | KeyObject,
): ImageVerdict {
  if (bytes.length !== image.sizeBytes)
    return {
      ok: false,
      check: 'size',
      reason: `size ${bytes.length} bytes, the job says ${image.sizeBytes}`,
    };
  const digest = sha256Hex(bytes);
  if (digest !== image.sha256)
    return {
      ok: false,
      check: 'sha256',
      reason: `sha256 ${digest.slice(0, 12)}… does not match ${image.sha256.slice(0, 12)}…`,
    };
  if (image.signatureAlgorithm !== FIRMWARE_SIGNATURE_ALGORITHM)
    return {
      ok: false,
      check: 'signature',
      reason: `unsupported algorithm ${String(image.signatureAlgorithm)}`,
    };
  let valid = false;
  try {
    const key = typeof publicKey === 'string' ? createPublicKey(publicKey) : publicKey;
    if (key.asymmetricKeyType !== 'ec' || key.asymmetricKeyDetails?.namedCurve !== 'prime256v1')
      return { ok: false, check: 'signature', reason: 'the verification key is not an ECDSA P-256 key' };
    valid = createVerify('sha256').update(bytes).verify(key, Buffer.from(image.signature, 'base64'));
  } catch (err) {
    return { ok: false, check: 'signature', reason: `signature unreadable: ${(err as Error).message}` };
  }
  return valid
    ? { ok: true }
    : { ok: false, check: 'signature', reason: 'signature does not verify with the release key' };
}

/** Base64 DER ECDSA-P256-SHA256 signature of `bytes` (what `fleet firmware publish` records). */
export function signFirmwareImage(bytes: Uint8Array, privateKeyPem: string | KeyObject): string {
  return createSign('sha256').update(bytes).sign(privateKeyPem).toString('base64');
}

/**
 * Whether a device of hardware revision `hwRev` may run the document's image. A device that may
 * not reports REJECTED (not retryable), never FAILED.
 */
export function isHwRevCompatible(doc: Pick<FirmwareJobDocument, 'hwRevs'>, hwRev: string): boolean {
  return doc.hwRevs.includes(hwRev);
}

/** A download that did not give the image. */
export class DownloadError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DownloadError';
  }
}

/** Options of {@link downloadFirmwareImage}. */
export interface DownloadOptions {
  /** Refuse a body larger than this (the document's size, usually). */
  maxBytes: number;
  /** @default 60000 */
  timeoutMs?: number;
  /** Called as bytes arrive, with the count so far. */
  onProgress?: (received: number) => void;
  /** Aborts the download (force-cancel). */
  signal?: AbortSignal;
}

/**
 * GETs `url` (http or https only; a job document still holding the presigned-URL placeholder is
 * refused with a message that says so). Resolves with the body; more than `maxBytes` is refused.
 */
export async function downloadFirmwareImage(url: string, options: DownloadOptions): Promise<Buffer> {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new DownloadError(
      url.startsWith('${')
        ? 'image.url is still a presigned-URL placeholder: the service did not presign it'
        : `image.url is not a URL: ${url.slice(0, 80)}`,
    );
  }
  if (parsed.protocol !== 'https:' && parsed.protocol !== 'http:')
    throw new DownloadError(`image.url scheme ${parsed.protocol} is not http or https`);
  const timeout = AbortSignal.timeout(options.timeoutMs ?? 60_000);
  const signal = options.signal ? AbortSignal.any([options.signal, timeout]) : timeout;
  let res: Response;
  try {
    res = await fetch(parsed, { signal });
  } catch (err) {
    throw new DownloadError(`GET ${parsed.host}${parsed.pathname} failed: ${(err as Error).message}`);
  }
  if (!res.ok || !res.body) {
    await res.body?.cancel();
    throw new DownloadError(`GET ${parsed.host}${parsed.pathname}: HTTP ${res.status}`);
  }
  const chunks: Buffer[] = [];
  let received = 0;
  try {
    for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
      received += chunk.length;
      if (received > options.maxBytes)
        throw new DownloadError(`image larger than the ${options.maxBytes} bytes the job names`);
      chunks.push(Buffer.from(chunk));
      options.onProgress?.(received);
    }
  } catch (err) {
    if (err instanceof DownloadError) throw err;
    throw new DownloadError(`download interrupted: ${(err as Error).message}`);
  }
  return Buffer.concat(chunks);
}
