/**
 * Presigned S3 GET URLs for the lab: what AWS IoT Jobs puts in a job document in place of
 * `${aws:iot:s3-presigned-url:…}`. The URL points at a small HTTP server on 127.0.0.1 that checks
 * the signature and the expiry, then answers with the object read from the S3 emulator.
 *
 * Why not s3rver's own URLs: s3rver checks query-string signatures against its own single
 * access key and its own clock (wall time), so a URL signed for the lab's clock would not expire
 * when a test moves that clock. Here the signature is an HMAC-SHA256 under a key drawn at start
 * (not SigV4; devices only see an opaque URL), and expiry is judged by the lab's clock.
 *
 * The URL has S3's shape, `http://127.0.0.1:<port>/<bucket>/<key>?X-Amz-Date=…&X-Amz-Expires=…&X-Amz-Signature=…`,
 * and answers as S3 does: 200 with the body, 403 `AccessDenied` "Request has expired" after
 * `expiresInSec`, 403 `SignatureDoesNotMatch` when the URL was altered, 404 `NoSuchKey`.
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/** Reads an object; rejects with an error named `NoSuchKey` or `NoSuchBucket` when it is missing. */
export type ObjectReader = (bucket: string, key: string) => Promise<Buffer>;

export interface PresignedUrlServerOptions {
  /** Where the objects come from (the lab's S3 emulator). */
  getObject: ObjectReader;
  /** The clock expiry is judged by (epoch ms). @default Date.now */
  clock?: () => number;
}

/** `YYYYMMDDTHHMMSSZ`, S3's X-Amz-Date. */
function amzDate(ms: number): string {
  return new Date(ms)
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d{3}/, '');
}

function parseAmzDate(text: string): number | undefined {
  const m = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(text);
  if (!m) return undefined;
  const [, y, mo, d, h, mi, s] = m;
  return Date.UTC(+y, +mo - 1, +d, +h, +mi, +s);
}

function s3Error(res: ServerResponse, status: number, code: string, message: string): void {
  const body = `<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>${code}</Code><Message>${message}</Message></Error>`;
  res.writeHead(status, { 'content-type': 'application/xml', 'content-length': Buffer.byteLength(body) });
  res.end(body);
}

/** The lab's presigned-URL file server. Start it, then hand {@link presign} to IoT Core. */
export class PresignedUrlServer {
  private readonly secret = randomBytes(32);
  private readonly clock: () => number;
  private server?: Server;
  private base?: string;
  private served = 0;
  private refused = 0;

  constructor(private readonly options: PresignedUrlServerOptions) {
    this.clock = options.clock ?? Date.now;
  }

  /** Listens on 127.0.0.1, a random port; resolves with the base URL. */
  async start(): Promise<string> {
    const server = createServer((req, res) => {
      this.handle(req, res).catch((e: Error) => s3Error(res, 500, 'InternalError', e.message));
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => resolve());
    });
    this.server = server;
    this.base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    return this.base;
  }

  /** A GET URL for `bucket/key`, valid for `expiresInSec` from now (the lab's clock). */
  presign(bucket: string, key: string, expiresInSec: number): string {
    if (!this.base) throw new Error('the presigned-URL server is not started');
    const date = amzDate(this.clock());
    const path = `/${encodeURIComponent(bucket)}/${key.split('/').map(encodeURIComponent).join('/')}`;
    const query = `X-Amz-Date=${date}&X-Amz-Expires=${expiresInSec}`;
    return `${this.base}${path}?${query}&X-Amz-Signature=${this.sign(path, query)}`;
  }

  /** Requests served and refused so far. */
  stats(): { served: number; refused: number } {
    return { served: this.served, refused: this.refused };
  }

  async stop(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    if (!server) return;
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  private sign(path: string, query: string): string {
    return createHmac('sha256', this.secret).update(`GET\n${path}\n${query}`).digest('hex');
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    const refuse = (status: number, code: string, message: string): void => {
      this.refused++;
      s3Error(res, status, code, message);
    };
    if (req.method !== 'GET' && req.method !== 'HEAD')
      return refuse(405, 'MethodNotAllowed', 'only GET and HEAD are signed');
    const date = url.searchParams.get('X-Amz-Date') ?? '';
    const expires = url.searchParams.get('X-Amz-Expires') ?? '';
    const given = Buffer.from(url.searchParams.get('X-Amz-Signature') ?? '', 'utf8');
    const expected = Buffer.from(
      this.sign(url.pathname, `X-Amz-Date=${date}&X-Amz-Expires=${expires}`),
      'utf8',
    );
    if (given.length !== expected.length || !timingSafeEqual(given, expected))
      return refuse(403, 'SignatureDoesNotMatch', 'The request signature we calculated does not match');
    const signedAt = parseAmzDate(date);
    if (signedAt === undefined) return refuse(403, 'AccessDenied', 'X-Amz-Date is not valid');
    if (this.clock() > signedAt + Number(expires) * 1000)
      return refuse(403, 'AccessDenied', 'Request has expired');
    const [, bucket, ...rest] = url.pathname.split('/');
    const key = rest.map(decodeURIComponent).join('/');
    let body: Buffer;
    try {
      body = await this.options.getObject(decodeURIComponent(bucket), key);
    } catch (e) {
      const name = (e as Error).name;
      if (name === 'NoSuchKey' || name === 'NoSuchBucket' || name === 'NotFound')
        return refuse(404, name, 'The specified key does not exist.');
      throw e;
    }
    this.served++;
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': body.length });
    res.end(req.method === 'HEAD' ? undefined : body);
  }
}
