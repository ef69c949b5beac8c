/**
 * AWS::Timestream::Database and AWS::Timestream::Table → targets of the local Timestream store
 * (../time-series.ts), which the rules' Timestream actions write to. Retention and magnetic-store
 * settings, schemas and KMS keys are accepted and not emulated.
 */
import { arn, type ResourceHandler } from './types';

export const timestreamDatabaseHandler: ResourceHandler = {
  types: ['AWS::Timestream::Database'],
  phase: 10,
  nameProperty: 'DatabaseName',
  maxNameLength: 256,
  sanitizeName: (n) => n.replace(/[^a-zA-Z0-9_.-]/g, '_'),
  attributes: (name, c) => ({ Arn: arn('timestream', c, `database/${name}`) }),
  create(ctx) {
    ctx.timeSeries.addDatabase(ctx.physicalName);
    return { status: 'created', detail: 'local store (JSON lines)' };
  },
};

export const timestreamTableHandler: ResourceHandler = {
  types: ['AWS::Timestream::Table'],
  phase: 11, // after databases
  nameProperty: 'TableName',
  maxNameLength: 256,
  sanitizeName: (n) => n.replace(/[^a-zA-Z0-9_.-]/g, '_'),
  // Ref: "DatabaseName|TableName", as CloudFormation returns it.
  ref: (name, _c, _p, resolved) => `${String(resolved('DatabaseName'))}|${name}`,
  attributes: (name, c, _p, resolved) => ({
    Arn: arn('timestream', c, `database/${String(resolved('DatabaseName'))}/table/${name}`),
    Name: name,
  }),
  create(ctx) {
    const database = String(ctx.properties.DatabaseName);
    ctx.timeSeries.addTable(database, ctx.physicalName);
    return {
      status: 'created',
      detail: `${database}.${ctx.physicalName} → ${ctx.timeSeries.timestreamFile(database, ctx.physicalName)}; retention not enforced`,
    };
  },
};
