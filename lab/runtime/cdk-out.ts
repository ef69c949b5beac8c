/**
 * Locate, refresh and read the synthesized cloud assembly (`cdk.out`).
 *
 * - {@link isStale}: `cdk.out/manifest.json` is missing, or a file under bin/, lib/, lambda/,
 *   or cdk.json / cdk.context.json / package-lock.json is newer than it.
 * - {@link synthesize}: runs the CDK app. The default `direct` mode runs cdk.json's `app`
 *   command itself with `CDK_OUTDIR` and `CDK_CONTEXT_JSON` (the context from cdk.json and
 *   cdk.context.json), exactly what the CDK CLI hands the app; `cli` mode runs
 *   `npx cdk synth --quiet --no-notices`. Neither needs credentials or network.
 * - {@link loadCloudAssembly}: reads manifest.json → stack templates and asset manifests.
 */
import { execFile } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
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
  /** File assets by hash. */
  assets: Map<string, FileAsset>;
}

export interface CloudAssembly {
  dir: string;
  stacks: StackArtifact[];
  /** Find the file asset an S3 key (`<hash>.zip`) refers to. */
  assetForS3Key(key: string): FileAsset | undefined;
}

/** Inputs whose change makes cdk.out stale, relative to the project root. */
export const SYNTH_INPUTS = ['bin', 'lib', 'lambda', 'cdk.json', 'cdk.context.json', 'package-lock.json'];

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

/** Why cdk.out must be re-synthesized, or undefined when it is fresh. */
export function isStale(projectDir: string, cdkOut = join(projectDir, 'cdk.out')): string | undefined {
  const manifest = join(cdkOut, 'manifest.json');
  if (!existsSync(manifest)) return `${manifest} is missing`;
  const built = statSync(manifest).mtimeMs;
  for (const input of SYNTH_INPUTS) {
    if (newestMtime(join(projectDir, input)) > built) return `${input} changed since the last synth`;
  }
  return undefined;
}

export interface SynthOptions {
  projectDir: string;
  outDir?: string;
  /** `direct` (default): run cdk.json's app command; `cli`: `npx cdk synth`. */
  mode?: 'direct' | 'cli';
  /** Extra context values (merged over cdk.json's). */
  context?: Record<string, unknown>;
  timeoutMs?: number;
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
        if (err) reject(new Error(`synth failed (${[cmd, ...args].join(' ')}): ${err.message}\n${stderr}`));
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
    ...process.env,
    AWS_EC2_METADATA_DISABLED: 'true',
    AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
  };
  const timeoutMs = opts.timeoutMs ?? 300_000;
  if ((opts.mode ?? 'direct') === 'cli') {
    const ctxArgs = Object.entries(opts.context ?? {}).flatMap(([k, v]) => [
      '--context',
      `${k}=${String(v)}`,
    ]);
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
  properties?: { templateFile?: string; file?: string; directoryName?: string; stackName?: string };
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
      stacks.push({ id, stackName: a.properties.stackName ?? id, templateFile, template, assets });
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

export interface EnsureOptions {
  projectDir?: string;
  cdkOut?: string;
  /** Synthesize when stale (default true). */
  synth?: boolean;
  mode?: 'direct' | 'cli';
  log?: (msg: string) => void;
}

/** Synthesize when stale, then load. Returns the assembly and the synth time (0 if fresh). */
export async function ensureCloudAssembly(
  opts: EnsureOptions = {},
): Promise<{ assembly: CloudAssembly; synthMs: number; reason?: string }> {
  const projectDir = resolvePath(opts.projectDir ?? process.cwd());
  const cdkOut = resolvePath(projectDir, opts.cdkOut ?? 'cdk.out');
  let synthMs = 0;
  const reason = opts.synth === false ? undefined : isStale(projectDir, cdkOut);
  if (reason) {
    opts.log?.(`synthesizing: ${reason}`);
    synthMs = await synthesize({ projectDir, outDir: cdkOut, mode: opts.mode });
    opts.log?.(`synthesized in ${synthMs} ms`);
  }
  return { assembly: loadCloudAssembly(cdkOut), synthMs, reason };
}
