#!/usr/bin/env node
/**
 * CDK entry point: the only place that reads CDK context and the environment.
 *
 * Context keys:
 * - `stage`: dev | staging | prod (overrides the config file's `stage`; default dev)
 * - `config`: path to a JSON file of FleetConfig overrides
 * - `stackName`: stack name (default DEFAULT_STACK_NAME)
 *
 * Without CDK_DEFAULT_ACCOUNT the stack is environment-agnostic, so `cdk synth` needs no AWS
 * credentials and no network.
 */
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { App, Validations } from 'aws-cdk-lib';
import { AwsSolutionsChecks } from 'cdk-nag';
import { DEFAULT_STACK_NAME } from '../core/stack-outputs';
import { contextKeyProblems, FleetConfig, FleetConfigError, resolveFleetConfig } from '../lib/config';
import { FleetStack } from '../lib/fleet-stack';

function readOverrides(file: unknown): Record<string, unknown> {
  if (file === undefined || file === '') return {};
  if (typeof file !== 'string') throw new FleetConfigError(['config (context): use a path to a JSON file']);
  const full = path.resolve(file);
  let text: string;
  try {
    text = readFileSync(full, 'utf8');
  } catch (e) {
    throw new FleetConfigError([
      `config (context): cannot read ${full} (${(e as Error).message}); fix the path`,
    ]);
  }
  try {
    const parsed: unknown = JSON.parse(text);
    if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
      throw new Error('the top level must be a JSON object');
    }
    return parsed as Record<string, unknown>;
  } catch (e) {
    throw new FleetConfigError([
      `config (context): ${full} is not valid JSON (${(e as Error).message}); fix the file`,
    ]);
  }
}

function loadConfig(app: App): FleetConfig {
  const misspelt = contextKeyProblems(Object.keys(app.node.getAllContext()));
  if (misspelt.length > 0) throw new FleetConfigError(misspelt);
  const overrides = readOverrides(app.node.tryGetContext('config'));
  const stageContext: unknown = app.node.tryGetContext('stage');
  return resolveFleetConfig(stageContext === undefined ? overrides : { ...overrides, stage: stageContext });
}

/**
 * A configuration mistake is not a crash: print the actionable message alone. Constructs raise
 * FleetConfigError too, for limits only the synthesized stack reveals (device policy size, names
 * shared with another fleet stack of this app).
 */
function orExit<T>(build: () => T): T {
  try {
    return build();
  } catch (e) {
    if (!(e instanceof FleetConfigError)) throw e;
    console.error(e.message);
    process.exit(1);
  }
}

const app = new App();
const config = orExit(() => loadConfig(app));
const stackName = (app.node.tryGetContext('stackName') as string | undefined) ?? DEFAULT_STACK_NAME;

const account = process.env.CDK_DEFAULT_ACCOUNT;
orExit(
  () =>
    new FleetStack(app, stackName, {
      stackName,
      description: `IoT fleet stack (${config.stage}): zero-touch provisioning, traceability registry, telemetry and self-health`,
      env: account ? { account, region: process.env.CDK_DEFAULT_REGION } : undefined,
      config,
      tags: { project: 'iot-fleet-stack', stage: config.stage },
    }),
);

Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
