import { CfnResource, type RemovalPolicy, Stack } from "aws-cdk-lib";
import * as iam from "aws-cdk-lib/aws-iam";
import type * as kms from "aws-cdk-lib/aws-kms";
import * as lambda from "aws-cdk-lib/aws-lambda";
import * as logs from "aws-cdk-lib/aws-logs";
import type { Construct } from "constructs";
import { denyAnyPrincipal } from "./deny.js";

// What AWS Control Tower's proactive controls (CloudFormation Guard rules, checked offline by
// test/infra/cfn-guard.test.ts) ask of resources that several constructs create.

/** Construct id of the singleton Lambda behind every `AwsCustomResource` in a stack (fixed by aws-cdk-lib). */
export const AWS_CUSTOM_RESOURCE_SINGLETON_ID = "AWS679f53fac002430cb0da5b7982bd2287";
/** Construct id of the provider behind `Vpc({ restrictDefaultSecurityGroup: true })` (fixed by aws-cdk-lib). */
export const RESTRICT_DEFAULT_SG_PROVIDER_ID = "Custom::VpcRestrictDefaultSGCustomResourceProvider";

/**
 * CT.KMS.PR.3: nobody creates a grant on `key` unless the grant is for an AWS resource (an integrated service
 * such as EBS or Lambda asks for it on the caller's behalf) or the caller is an AWS service. A grant is a
 * permission outside the key policy that only `RetireGrant`/`RevokeGrant` ever removes, so a principal allowed
 * `kms:CreateGrant` could otherwise hand itself (or another account) lasting use of the key. The services that use
 * ftguard's keys (S3 with SSE-KMS, CloudWatch Logs, SNS, SQS) call KMS directly and create no grants.
 */
export function denyGrantsNotForAwsResources(key: kms.IKey): void {
	key.addToResourcePolicy(
		denyAnyPrincipal("DenyGrantsNotForAwsResources", {
			actions: ["kms:CreateGrant"],
			resources: ["*"],
			// BoolIfExists: a request without the grant key (it is only set on grant operations) is not exempt.
			conditions: { BoolIfExists: { "kms:GrantIsForAWSResource": "false", "aws:PrincipalIsAWSService": "false" } },
		}),
	);
}

/**
 * The key policy of a customer-managed key for CloudWatch Logs (CT.CLOUDWATCH.PR.3): no grants but for AWS
 * resources, and the Logs service of this account and region only, for log groups of this account.
 */
export function logsKeyPolicy(key: kms.IKey): void {
	const stack = Stack.of(key);
	denyGrantsNotForAwsResources(key);
	key.addToResourcePolicy(
		new iam.PolicyStatement({
			sid: "CloudWatchLogsInThisAccountAndRegion",
			principals: [new iam.ServicePrincipal(`logs.${stack.region}.amazonaws.com`)],
			actions: ["kms:Encrypt*", "kms:Decrypt*", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:Describe*"],
			resources: ["*"],
			conditions: {
				ArnLike: {
					"kms:EncryptionContext:aws:logs:arn": `arn:${stack.partition}:logs:${stack.region}:${stack.account}:*`,
				},
			},
		}),
	);
}

/**
 * CT.CLOUDWATCH.PR.3 and a bounded retention for the logs of CDK's own provider functions in the stack of `scope`:
 * the `AwsCustomResource` singleton and the VPC's restrict-default-security-group handler. Without this, their
 * logs (which hold SDK call parameters and responses) sit in a log group without a customer-managed key — with
 * `@aws-cdk/aws-lambda:useCdkManagedLogGroup`, for two years; without the flag, in a group Lambda creates on first
 * use that never expires. Idempotent: the first caller's key and retention win, later calls change nothing.
 */
export function secureProviderLogs(
	scope: Construct,
	options: { key: kms.IKey; retention: logs.RetentionDays; removalPolicy: RemovalPolicy },
): void {
	const stack = Stack.of(scope);
	const singleton = stack.node.tryFindChild(AWS_CUSTOM_RESOURCE_SINGLETON_ID);
	if (singleton instanceof lambda.Function) {
		const managed = singleton.node.tryFindChild("LogGroup");
		if (managed instanceof logs.LogGroup) {
			// The flag's group is the function's default `/aws/lambda/<name>`: give it the key and retention.
			const cfn = managed.node.defaultChild as logs.CfnLogGroup;
			if (cfn.kmsKeyId === undefined) {
				cfn.kmsKeyId = options.key.keyArn;
				cfn.retentionInDays = options.retention;
			}
		} else {
			redirectLogs(scope, singleton.node.defaultChild as CfnResource, "AwsCustomResourceLogs", options);
		}
	}
	const handler = stack.node.tryFindChild(RESTRICT_DEFAULT_SG_PROVIDER_ID)?.node.tryFindChild("Handler");
	if (handler instanceof CfnResource) redirectLogs(scope, handler, "RestrictDefaultSgLogs", options);
}

/** Functions already redirected, so a second caller (another construct of the stack) changes nothing. */
const redirected = new WeakSet<CfnResource>();

/**
 * Points a function's `LoggingConfig` at a new encrypted group with a generated name: no race with the group Lambda
 * would create on the first invocation, and nothing to collide with after a rollback.
 */
function redirectLogs(
	scope: Construct,
	fn: CfnResource,
	id: string,
	options: { key: kms.IKey; retention: logs.RetentionDays; removalPolicy: RemovalPolicy },
): void {
	if (redirected.has(fn)) return;
	redirected.add(fn);
	const group = new logs.LogGroup(scope, id, {
		encryptionKey: options.key,
		retention: options.retention,
		removalPolicy: options.removalPolicy,
	});
	fn.addPropertyOverride("LoggingConfig.LogGroup", group.logGroupName);
}
