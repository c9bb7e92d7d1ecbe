#!/usr/bin/env node
import { Annotations, App, Validations } from "aws-cdk-lib";
import { AwsSolutionsChecks } from "cdk-nag";
import { isFtguardError } from "../lib/core/errors.js";
import { type DeployConfig, loadDeployConfig } from "../lib/infra/config.js";
import { FtguardStack, type FtguardStackProps, stackPropsFromConfig } from "../lib/infra/stack.js";

/**
 * The ftguard CDK app. No account or region is required: `npx cdk synth` works offline with no credentials and
 * yields an environment-agnostic template. To pin an environment, pass context:
 * `npx cdk deploy -c account=123456789012 -c region=eu-west-1` (a VPC in a pinned environment needs its
 * availability zones in cdk.json context, or credentials to look them up).
 *
 * A deployment is configured without code: `npx cdk deploy -c config=ftguard.config.json` (docs/deploy.md; the
 * schema is lib/infra/config.ts, an example is examples/ftguard.config.json). An invalid file stops the synth with
 * one line naming the field: `ftguard config: gpu.maxVcpus: expected a positive integer (ftguard.config.json)`.
 * Without a config the policy trusts no signer and every scan ends QUARANTINED (a warning says so).
 */
const app = new App();
const account = app.node.tryGetContext("account") as string | undefined;
const region = app.node.tryGetContext("region") as string | undefined;
const configFile = app.node.tryGetContext("config") as string | undefined;

let config: DeployConfig | undefined;
if (configFile !== undefined) {
	try {
		config = loadDeployConfig(configFile);
	} catch (e) {
		if (!isFtguardError(e)) throw e;
		process.stderr.write(`ftguard config: ${e.message} (${configFile})\n`);
		process.exit(1);
	}
}

const base: FtguardStackProps = {
	description: "ftguard: secured path from fine-tuning jobs to production",
	...(account && region ? { env: { account, region } } : {}),
};
const stack = new FtguardStack(app, "Ftguard", config ? stackPropsFromConfig(config, base) : base);
if (!config) {
	Annotations.of(stack).addWarningV2(
		"ftguard:no-config",
		"no -c config=<file>: the policy trusts no signer, so every scan ends QUARANTINED (docs/deploy.md)",
	);
}

Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
