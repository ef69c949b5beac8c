import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { App, Stack } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import * as logs from 'aws-cdk-lib/aws-logs';
import { FleetFunction, METRICS_NAMESPACE } from '../../../lib/common/fleet-function';

const ENTRY = 'test/unit/constructs/fixtures/sdk-echo.handler.ts';

describe('FleetFunction', () => {
  const stack = new Stack(new App({ context: { 'aws:cdk:bundling-stacks': [] } }), 'Fn');
  new FleetFunction(stack, 'Echo', {
    entry: ENTRY,
    serviceName: 'echo',
    logRetention: logs.RetentionDays.TWO_WEEKS,
    environment: { EXTRA: '1' },
  });
  const template = Template.fromStack(stack);
  const [fnId, fn] = Object.entries(template.findResources('AWS::Lambda::Function'))[0];

  test('house defaults: Node.js 22, arm64, active tracing, Powertools environment', () => {
    expect(fn.Properties).toMatchObject({
      Runtime: 'nodejs22.x',
      Architectures: ['arm64'],
      TracingConfig: { Mode: 'Active' },
      Handler: 'index.handler',
      Environment: {
        Variables: {
          POWERTOOLS_SERVICE_NAME: 'echo',
          POWERTOOLS_METRICS_NAMESPACE: METRICS_NAMESPACE,
          EXTRA: '1',
        },
      },
    });
    expect(METRICS_NAMESPACE).toBe('IotFleet');
    expect(fnId).toMatch(/^Echo/);
  });

  test('logs to an explicit log group with retention (no deprecated logRetention custom resource)', () => {
    const [logId, log] = Object.entries(template.findResources('AWS::Logs::LogGroup'))[0];
    expect(log.Properties.RetentionInDays).toBe(14);
    expect(fn.Properties.LoggingConfig).toEqual({ LogGroup: { Ref: logId } });
    expect(template.findResources('Custom::LogRetention')).toEqual({});
  });

  test('its role holds no managed policy', () => {
    for (const role of Object.values(template.findResources('AWS::IAM::Role'))) {
      expect(role.Properties.ManagedPolicyArns).toBeUndefined();
    }
  });

  test('bundles with the local esbuild into a self-contained CommonJS asset (AWS SDK included)', () => {
    const outdir = mkdtempSync(path.join(tmpdir(), 'fleet-fn-'));
    try {
      const app = new App({ outdir });
      const s = new Stack(app, 'Bundled');
      new FleetFunction(s, 'Echo', { entry: ENTRY, serviceName: 'echo' });
      app.synth();
      const assetDir = readdirSync(outdir)
        .filter((d) => d.startsWith('asset.'))
        .map((d) => path.join(outdir, d))
        .find((d) => existsSync(path.join(d, 'index.js')));
      expect(assetDir).toBeDefined();
      const code = readFileSync(path.join(assetDir!, 'index.js'), 'utf8');
      // the SDK client and its smithy runtime are inside the bundle, not required at run time
      expect(code).not.toMatch(/require\(["']@aws-sdk\//);
      expect(code).not.toMatch(/require\(["']@smithy\//);
      expect(code).toContain('DynamoDB_20120810'); // the DynamoDB client's service target
      expect(code.length).toBeGreaterThan(50_000);
      expect(code).toMatch(/module\.exports|exports\./);
      // the Lambda credential chain replaces the SDK's default one (no SSO/ini/STS clients)
      expect(code).toContain('no AWS credentials in the environment');
      expect(code).not.toContain('fromSSO');
      // no dynamic import() left for loaders without an ESM hook
      expect(code).not.toMatch(/\bimport\(/);
      // a source map that maps to file:line without carrying the sources
      const map = JSON.parse(readFileSync(path.join(assetDir!, 'index.js.map'), 'utf8')) as {
        sources: string[];
        sourcesContent?: unknown;
      };
      expect(map.sources.some((s) => s.endsWith('sdk-echo.handler.ts'))).toBe(true);
      expect(map.sourcesContent).toBeUndefined();
    } finally {
      rmSync(outdir, { recursive: true, force: true });
    }
  });
});
