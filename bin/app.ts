#!/usr/bin/env node
import { App, Validations } from "aws-cdk-lib";
import { AwsSolutionsChecks } from "cdk-nag";
import { FtguardStack } from "../lib/infra/stack.js";

/**
 * The ftguard CDK app. No account or region is required: `npx cdk synth` works offline with no credentials and
 * yields an environment-agnostic template. To pin an environment, pass context:
 * `npx cdk deploy -c account=123456789012 -c region=eu-west-1` (a VPC in a pinned environment needs its
 * availability zones in cdk.json context, or credentials to look them up).
 */
const app = new App();
const account = app.node.tryGetContext("account") as string | undefined;
const region = app.node.tryGetContext("region") as string | undefined;

new FtguardStack(app, "Ftguard", {
	description: "ftguard: secured path from fine-tuning jobs to production",
	...(account && region ? { env: { account, region } } : {}),
});

Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
