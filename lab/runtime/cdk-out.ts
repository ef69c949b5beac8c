/**
 * Locate, refresh and read the synthesized cloud assembly (`cdk.out`).
 *
 * - {@link isStale}: `cdk.out/manifest.json` is missing; or the lab's record of the synth
 *   ({@link SYNTH_RECORD_FILE} beside manifest.json: context values and the content hash of
 *   every input file such as a config file, and the synth environment CDK_DEFAULT_ACCOUNT /
 *   CDK_DEFAULT_REGION) is missing or differs from what is asked now; or someone synthesized
 *   into the directory after the lab did; or a file under bin/, core/, lib/, lambda/, or
 *   cdk.json / cdk.context.json / package.json / package-lock.json / tsconfig.json is newer
 *   than it.
 * - {@link synthesize}: runs the CDK app. The default `direct` mode runs cdk.json's `app`
 *   command itself with `CDK_OUTDIR` and `CDK_CONTEXT_JSON` (the context from cdk.json and
 *   cdk.context.json), exactly what the CDK CLI hands the app; `cli` mode runs
 *   `npx cdk synth --quiet --no-notices` (context values that are not strings as JSON).
 *   Neither needs credentials or network.
 * - {@link loadCloudAssembly}: reads manifest.json → stack templates and asset manifests.
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join, resolve as resolvePath } from 'node:path';

export interface CfnTemplate {
  Parameters?: Record<string, { Type?: string; Default?: unknown }>;
  Conditions?: Record<string, unknown>;
  Resources: Record<string, CfnResource>;
  Outputs?: Record<string, { Value: unknown; Export?: unknown; Condition?: string }>;
}

export interface CfnResource {
  Type: string;
  Properties?: Record<string, unknown>;
  Condition?: string;
  DependsOn?: string | string[];
  Metadata?: Record<string, unknown>;
}

export interface FileAsset {
  hash: string;
  /** Absolute path of the asset directory or file inside cdk.out. */
  path: string;
  packaging: 'zip' | 'file' | string;
  /** S3 object keys the asset is published under (what Code.S3Key refers to). */
  objectKeys: string[];
}

export interface StackArtifact {
  /** Artifact id (the construct path id). */
  id: string;
  stackName: string;
  templateFile: string;
  template: CfnTemplate;
  /** Stack tags from the manifest (what `Tags.of(stack)` set). */
  tags: Record<string, string>;
  /** File assets by hash. */
  assets: Map<string, FileAsset>;
}

export interface CloudAssembly {
  dir: string;
  stacks: StackArtifact[];
  /** Find the file asset an S3 key (`<hash>.zip`) refers to. */
  assetForS3Key(key: string): FileAsset | undefined;
}

/**
 * Inputs whose change makes cdk.out stale, relative to the project root. tsconfig.json and
 * package.json hold what the bundler reads (compiler options, path aliases, module type).
 */
export const SYNTH_INPUTS = [
  'bin',
  'core',
  'lib',
  'lambda',
  'cdk.json',
  'cdk.context.json',
  'package-lock.json',
  'package.json',
  'tsconfig.json',
];

/** Environment variables the app reads that change the template (the stack's account and region). */
export const SYNTH_ENVIRONMENT = ['CDK_DEFAULT_ACCOUNT', 'CDK_DEFAULT_REGION'] as const;

/** The lab's record of a synth, written beside manifest.json. */
export const SYNTH_RECORD_FILE = 'lab-synth.json';

/** What a synth was asked for: extra context values and input files outside the project sources. */
export interface SynthRequest {
  /** Context values passed to the app (merged over cdk.json's). @default {} */
  context?: Record<string, unknown>;
  /** Files the app reads (e.g. a config file given in the context), absolute paths. @default [] */
  inputFiles?: string[];
  /** The environment the app runs with ({@link SYNTH_ENVIRONMENT} is recorded). @default process.env */
  env?: NodeJS.ProcessEnv;
}

export interface SynthRecord {
  context: Record<string, unknown>;
  /** Absolute path → sha256 of the content at synth time (`missing` when it did not exist). */
  inputFiles: Record<string, string>;
  /** The {@link SYNTH_ENVIRONMENT} variables that were set, with their values. */
  environment: Record<string, string>;
  /** mtime of manifest.json right after the synth: a later synth by another tool changes it. */
  manifestMtimeMs: number;
  synthesizedAt: string;
}

function fileHash(path: string): string {
  try {
    return createHash('sha256').update(readFileSync(path)).digest('hex');
  } catch {
    return 'missing';
  }
}

/** The {@link SYNTH_ENVIRONMENT} variables set in `env`. */
export function synthEnvironment(env: NodeJS.ProcessEnv = process.env): Record<string, string> {
  const picked: Record<string, string> = {};
  for (const name of SYNTH_ENVIRONMENT) {
    const value = env[name];
    if (value !== undefined) picked[name] = value;
  }
  return picked;
}

function recordFor(request: SynthRequest, manifestMtimeMs: number): SynthRecord {
  return {
    context: request.context ?? {},
    inputFiles: Object.fromEntries((request.inputFiles ?? []).map((f) => [f, fileHash(f)])),
    environment: synthEnvironment(request.env),
    manifestMtimeMs,
    synthesizedAt: new Date().toISOString(),
  };
}

/** The record of the last synth the lab made into `cdkOut`, or undefined. */
export function readSynthRecord(cdkOut: string): SynthRecord | undefined {
  try {
    return JSON.parse(readFileSync(join(cdkOut, SYNTH_RECORD_FILE), 'utf8')) as SynthRecord;
  } catch {
    return undefined;
  }
}

function writeSynthRecord(cdkOut: string, request: SynthRequest): void {
  const manifestMtimeMs = statSync(join(cdkOut, 'manifest.json')).mtimeMs;
  writeFileSync(
    join(cdkOut, SYNTH_RECORD_FILE),
    `${JSON.stringify(recordFor(request, manifestMtimeMs), null, 2)}\n`,
  );
}

const canonical = (v: unknown): string =>
  JSON.stringify(v, (_k, x: unknown) =>
    x && typeof x === 'object' && !Array.isArray(x)
      ? Object.fromEntries(
          Object.entries(x as Record<string, unknown>).sort(([a], [b]) => a.localeCompare(b)),
        )
      : x,
  );

function newestMtime(path: string): number {
  if (!existsSync(path)) return 0;
  const st = statSync(path);
  if (!st.isDirectory()) return st.mtimeMs;
  let newest = st.mtimeMs;
  for (const entry of readdirSync(path)) {
    if (entry === 'node_modules' || entry.startsWith('.')) continue;
    newest = Math.max(newest, newestMtime(join(path, entry)));
  }
  return newest;
}

/** Why cdk.out must be re-synthesized for `request`, or undefined when it is fresh. */
export function isStale(
  projectDir: string,
  cdkOut = join(projectDir, 'cdk.out'),
  request: SynthRequest = {},
): string | undefined {
  const manifest = join(cdkOut, 'manifest.json');
  if (!existsSync(manifest)) return `${manifest} is missing`;
  const built = statSync(manifest).mtimeMs;
  const record = readSynthRecord(cdkOut);
  if (!record) return `${cdkOut} has no record of the context it was synthesized with`;
  if (record.manifestMtimeMs !== built)
    return `${cdkOut} was synthesized again outside the lab (its context is unknown)`;
  if (canonical(record.context) !== canonical(request.context ?? {}))
    return `the context changed (was ${canonical(record.context)}, now ${canonical(request.context ?? {})})`;
  const environment = synthEnvironment(request.env);
  // A record written before the environment was recorded counts as "none set".
  if (canonical(record.environment ?? {}) !== canonical(environment))
    return `the synth environment changed (was ${canonical(record.environment ?? {})}, now ${canonical(environment)})`;
  const wanted = recordFor(request, built).inputFiles;
  for (const [file, hash] of Object.entries(wanted))
    if (record.inputFiles[file] !== hash) return `${file} changed since the last synth`;
  for (const input of SYNTH_INPUTS) {
    if (newestMtime(join(projectDir, input)) > built) return `${input} changed since the last synth`;
  }
  return undefined;
}

/** The CDK app failed; `message` is one line: what the app printed (e.g. a config error). */
export class SynthError extends Error {
  constructor(
    readonly command: string,
    readonly cause: string,
    readonly stderr: string,
  ) {
    const said = stderr
      .split('\n')
      .map((l) => l.trim())
      .filter((l) => l && !l.startsWith('at ') && !/^[\s│|^~]*$/.test(l));
    super(
      `the CDK app (${command}) failed to synthesize: ${said.slice(0, 6).join(' ') || cause.split('\n')[0]}`,
    );
    this.name = 'SynthError';
  }
}

export interface SynthOptions {
  projectDir: string;
  outDir?: string;
  /** `direct` (default): run cdk.json's app command; `cli`: `npx cdk synth`. */
  mode?: 'direct' | 'cli';
  /** Extra context values (merged over cdk.json's). */
  context?: Record<string, unknown>;
  /** The environment the app runs with. @default process.env */
  env?: NodeJS.ProcessEnv;
  timeoutMs?: number;
}

/**
 * `--context key=value` arguments for `cdk synth`: strings as they are, any other value as JSON
 * (an object must not reach the app as "[object Object]").
 */
export function cliContextArgs(context: Record<string, unknown>): string[] {
  return Object.entries(context).flatMap(([k, v]) => [
    '--context',
    `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`,
  ]);
}

function run(
  cmd: string,
  args: string[],
  opts: { cwd: string; env: NodeJS.ProcessEnv; timeoutMs: number; shell?: boolean },
): Promise<void> {
  return new Promise((resolveRun, reject) => {
    execFile(
      cmd,
      args,
      {
        cwd: opts.cwd,
        env: opts.env,
        timeout: opts.timeoutMs,
        maxBuffer: 64 * 1024 * 1024,
        shell: opts.shell,
      },
      (err, _stdout, stderr) => {
        if (err) reject(new SynthError([cmd, ...args].join(' '), err.message, stderr));
        else resolveRun();
      },
    );
  });
}

/** Synthesize the CDK app into `outDir`; resolves with the elapsed milliseconds. */
export async function synthesize(opts: SynthOptions): Promise<number> {
  const started = Date.now();
  const outDir = resolvePath(opts.projectDir, opts.outDir ?? 'cdk.out');
  const cdkJson = JSON.parse(readFileSync(join(opts.projectDir, 'cdk.json'), 'utf8')) as {
    app: string;
    context?: Record<string, unknown>;
  };
  const env: NodeJS.ProcessEnv = {
    ...(opts.env ?? process.env),
    AWS_EC2_METADATA_DISABLED: 'true',
    AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
  };
  const timeoutMs = opts.timeoutMs ?? 300_000;
  if ((opts.mode ?? 'direct') === 'cli') {
    const ctxArgs = cliContextArgs(opts.context ?? {});
    await run('npx', ['cdk', 'synth', '--quiet', '--no-notices', '--output', outDir, ...ctxArgs], {
      cwd: opts.projectDir,
      env,
      timeoutMs,
    });
  } else {
    const contextFile = join(opts.projectDir, 'cdk.context.json');
    const context = {
      ...(cdkJson.context ?? {}),
      ...(existsSync(contextFile)
        ? (JSON.parse(readFileSync(contextFile, 'utf8')) as Record<string, unknown>)
        : {}),
      ...(opts.context ?? {}),
    };
    await run(cdkJson.app, [], {
      cwd: opts.projectDir,
      env: {
        ...env,
        CDK_OUTDIR: outDir,
        CDK_CONTEXT_JSON: JSON.stringify(context),
        CDK_CLI_VERSION: env.CDK_CLI_VERSION ?? '2.1148.0',
      },
      timeoutMs,
      shell: true,
    });
  }
  return Date.now() - started;
}

interface ManifestArtifact {
  type: string;
  properties?: {
    templateFile?: string;
    file?: string;
    directoryName?: string;
    stackName?: string;
    tags?: Record<string, string>;
  };
  displayName?: string;
}

function readAssetManifest(dir: string, file: string, into: Map<string, FileAsset>): void {
  const doc = JSON.parse(readFileSync(join(dir, file), 'utf8')) as {
    files?: Record<
      string,
      { source: { path?: string; packaging?: string }; destinations?: Record<string, { objectKey?: string }> }
    >;
  };
  for (const [hash, entry] of Object.entries(doc.files ?? {})) {
    if (!entry.source.path) continue;
    into.set(hash, {
      hash,
      path: resolvePath(dir, entry.source.path),
      packaging: entry.source.packaging ?? 'file',
      objectKeys: Object.values(entry.destinations ?? {})
        .map((d) => d.objectKey)
        .filter((k): k is string => typeof k === 'string'),
    });
  }
}

/** Read a cloud assembly directory (nested assemblies, i.e. stages, included). */
export function loadCloudAssembly(dir: string): CloudAssembly {
  const stacks: StackArtifact[] = [];
  const allAssets = new Map<string, FileAsset>();
  const visit = (d: string): void => {
    const manifestPath = join(d, 'manifest.json');
    if (!existsSync(manifestPath))
      throw new Error(`no cloud assembly at ${d} (manifest.json missing): run the synth first`);
    const manifest = JSON.parse(readFileSync(manifestPath, 'utf8')) as {
      artifacts?: Record<string, ManifestArtifact>;
    };
    const artifacts = manifest.artifacts ?? {};
    const assetsByArtifact = new Map<string, Map<string, FileAsset>>();
    for (const [id, a] of Object.entries(artifacts)) {
      if (a.type === 'cdk:asset-manifest' && a.properties?.file) {
        const m = new Map<string, FileAsset>();
        readAssetManifest(d, a.properties.file, m);
        assetsByArtifact.set(id, m);
        for (const [h, asset] of m) allAssets.set(h, asset);
      } else if (a.type === 'cdk:cloud-assembly' && a.properties?.directoryName) {
        visit(join(d, a.properties.directoryName));
      }
    }
    for (const [id, a] of Object.entries(artifacts)) {
      if (a.type !== 'aws:cloudformation:stack' || !a.properties?.templateFile) continue;
      const templateFile = join(d, a.properties.templateFile);
      const template = JSON.parse(readFileSync(templateFile, 'utf8')) as CfnTemplate;
      const assets = assetsByArtifact.get(`${id}.assets`) ?? new Map<string, FileAsset>();
      stacks.push({
        id,
        stackName: a.properties.stackName ?? id,
        templateFile,
        template,
        assets,
        tags: a.properties.tags ?? {},
      });
    }
  };
  visit(dir);
  return {
    dir,
    stacks,
    assetForS3Key(key: string) {
      for (const asset of allAssets.values()) if (asset.objectKeys.includes(key)) return asset;
      const hash = key.replace(/^.*\//, '').replace(/\.(zip|jar)$/, '');
      return allAssets.get(hash);
    },
  };
}

export interface EnsureOptions extends SynthRequest {
  projectDir?: string;
  cdkOut?: string;
  /** Synthesize when stale (default true). */
  synth?: boolean;
  mode?: 'direct' | 'cli';
  log?: (msg: string) => void;
}

/**
 * Synthesize when stale (recording the request beside manifest.json), then load. Returns the
 * assembly, the synth time (0 if fresh) and why it was synthesized.
 */
export async function ensureCloudAssembly(
  opts: EnsureOptions = {},
): Promise<{ assembly: CloudAssembly; synthMs: number; reason?: string }> {
  const projectDir = resolvePath(opts.projectDir ?? process.cwd());
  const cdkOut = resolvePath(projectDir, opts.cdkOut ?? 'cdk.out');
  const request: SynthRequest = {
    context: opts.context ?? {},
    inputFiles: opts.inputFiles ?? [],
    env: opts.env ?? process.env,
  };
  let synthMs = 0;
  const reason = opts.synth === false ? undefined : isStale(projectDir, cdkOut, request);
  if (reason) {
    opts.log?.(`synthesizing: ${reason}`);
    synthMs = await synthesize({
      projectDir,
      outDir: cdkOut,
      mode: opts.mode,
      context: request.context,
      env: request.env,
    });
    writeSynthRecord(cdkOut, request);
    opts.log?.(`synthesized in ${synthMs} ms`);
  }
  return { assembly: loadCloudAssembly(cdkOut), synthMs, reason };
}
