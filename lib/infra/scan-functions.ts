/**
 * The scan pipeline's Lambda functions: their sizing, where they run (VPC or not), their log groups and code.
 * {@link ScanFunctionFactory} adds each function to the given scope under the id it has always had
 * (`<Step>Function`), so logical ids do not depend on which part of the pipeline asks for it.
 */
import { existsSync } from "node:fs";
import { join } from "node:path";
import { Annotations, Duration, Size, Stack, Validations } from "aws-cdk-lib";
import * as ec2 from "aws-cdk-lib/aws-ec2";
import * as iam from "aws-cdk-lib/aws-iam";
import * as lambda from "aws-cdk-lib/aws-lambda";
import type * as logs from "aws-cdk-lib/aws-logs";
import * as sqs from "aws-cdk-lib/aws-sqs";
import type { Construct } from "constructs";
import { bundleHandlers } from "./handler-bundles.js";
import { type IsolatedNetwork, vpcRef } from "./isolated-network.js";
import type { PipelineLogs } from "./pipeline-logs.js";
import { LAMBDA_STEPS, type LambdaStep } from "./state-machine.js";

/** Every function of the pipeline: the workflow's steps, and those that are not states of it. */
export type ScanFunctionName = LambdaStep | "start" | "sweep" | "base-model" | "dataset" | "monitor";

const FUNCTION_NAMES: readonly ScanFunctionName[] = [
	...LAMBDA_STEPS,
	"start",
	"sweep",
	"base-model",
	"dataset",
	"monitor",
];

/** Per-function sizing: multi-GiB checkpoints are streamed (manifest) or parsed (files) within one invocation. */
export const FUNCTION_SIZING: Readonly<
	Record<ScanFunctionName, { timeout: Duration; memoryMiB: number; ephemeralMiB: number; description: string }>
> = {
	start: { timeout: Duration.seconds(30), memoryMiB: 256, ephemeralMiB: 512, description: "commit marker → execution" },
	mark: { timeout: Duration.minutes(5), memoryMiB: 512, ephemeralMiB: 512, description: "tag SCANNING" },
	manifest: { timeout: Duration.minutes(15), memoryMiB: 4096, ephemeralMiB: 1024, description: "per-file SHA-256" },
	signature: { timeout: Duration.minutes(5), memoryMiB: 1024, ephemeralMiB: 512, description: "Sigstore bundle" },
	files: { timeout: Duration.minutes(15), memoryMiB: 4096, ephemeralMiB: 10240, description: "format scanners" },
	decide: { timeout: Duration.minutes(2), memoryMiB: 512, ephemeralMiB: 512, description: "policy → verdict" },
	record: { timeout: Duration.minutes(5), memoryMiB: 512, ephemeralMiB: 512, description: "verdict tags + record" },
	// Well under the shortest interval, so runs never overlap (reserved concurrency 1 as well).
	sweep: { timeout: Duration.minutes(4), memoryMiB: 512, ephemeralMiB: 512, description: "quarantine stuck scans" },
	// hashes and scans a whole base model in one invocation, like manifest + files together
	"base-model": {
		timeout: Duration.minutes(15),
		memoryMiB: 4096,
		ephemeralMiB: 1024,
		description: "base model vs. the signed registry",
	},
	// copies a dataset version to /tmp and scans it (up to LAMBDA_DATASET_MAX_BYTES; larger ones go to the Batch job)
	dataset: {
		timeout: Duration.minutes(15),
		memoryMiB: 4096,
		ephemeralMiB: 10240,
		description: "dataset poisoning scan (large versions: a Batch job)",
	},
	// one batch of log events (or one log object) per invocation: a read-modify-write of each version's window
	monitor: {
		timeout: Duration.minutes(2),
		memoryMiB: 1024,
		ephemeralMiB: 512,
		description: "production output monitor",
	},
};

/**
 * Functions that run outside the VPC: start and sweep call Step Functions, which has no endpoint in the isolated
 * subnets; the monitor reads the platform's own log buckets (which the S3 endpoint's policy does not admit) and
 * DynamoDB, and never a checkpoint.
 */
export const OUTSIDE_VPC: ReadonlySet<ScanFunctionName> = new Set(["start", "sweep", "monitor"]);

export interface ScanFunctionFactoryProps {
	readonly runtime: lambda.Runtime;
	readonly tracing: boolean;
	/** Directory of the handler files `<name>.ts`. */
	readonly handlersDir: string;
	/** Root of the package: the bundles' working directory. */
	readonly projectRoot: string;
	readonly network: IsolatedNetwork;
	readonly logs: PipelineLogs;
	/** What every function's environment holds. */
	readonly environment: Readonly<Record<string, string>>;
}

/** One function: who it runs as and how it is invoked. */
export interface ScanFunctionOptions {
	readonly role: iam.Role;
	readonly reservedConcurrency: number;
	/** Added to the factory's environment. */
	readonly environment?: Readonly<Record<string, string>>;
	/** Where failed asynchronous invocations go (none for the workflow's steps, which Step Functions calls). */
	readonly deadLetterQueue?: sqs.Queue;
	/** Lambda's own retries of a failed asynchronous invocation. */
	readonly retryAttempts: number;
}

export class ScanFunctionFactory {
	private readonly stack: Stack;
	private bundles: ReadonlyMap<string, string> | undefined;

	constructor(
		private readonly scope: Construct,
		private readonly props: ScanFunctionFactoryProps,
	) {
		this.stack = Stack.of(scope);
	}

	public create(name: ScanFunctionName, options: ScanFunctionOptions): lambda.Function {
		const { role } = options;
		const sizing = FUNCTION_SIZING[name];
		// "base-model" → BaseModelFunction; the one-word names keep the ids they always had
		const id = `${name
			.split("-")
			.map((w) => `${w[0]?.toUpperCase()}${w.slice(1)}`)
			.join("")}Function`;
		// A fixed name (from the stack name) keeps the roles' log statements plain ARNs.
		const logGroupName = `/ftguard/${this.stack.stackName}/lambda/${name}`;
		const logGroup = this.props.logs.logGroup(`${id}LogGroup`, logGroupName);
		role.addToPrincipalPolicy(
			new iam.PolicyStatement({
				actions: ["logs:CreateLogStream", "logs:PutLogEvents"],
				resources: [
					`arn:${this.stack.partition}:logs:${this.stack.region}:${this.stack.account}:log-group:${logGroupName}:*`,
				],
			}),
		);
		Validations.of(role).acknowledge({
			id: `AwsSolutions::AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:logs:<AWS::Region>:<AWS::AccountId>:log-group:${logGroupName}:*]`,
			reason: `Log streams of the ${name} function are created at run time inside its one log group; stream-level ARNs are not known at deploy time`,
		});
		const fn = new lambda.Function(this.scope, id, {
			description: `ftguard ${name}: ${sizing.description}`,
			runtime: this.props.runtime,
			architecture: lambda.Architecture.ARM_64,
			role: role as unknown as iam.IRole,
			timeout: sizing.timeout,
			memorySize: sizing.memoryMiB,
			ephemeralStorageSize: Size.mebibytes(sizing.ephemeralMiB),
			reservedConcurrentExecutions: options.reservedConcurrency,
			// The step functions read checkpoints and reports: isolated subnets, S3 through the gateway endpoint. The
			// start function reads no object (an event in, StartExecution out) and the sweeper only reads executions
			// and object tags, so they run outside the VPC rather than add a Step Functions interface endpoint.
			...(OUTSIDE_VPC.has(name)
				? {}
				: {
						vpc: vpcRef(this.props.network.vpc),
						vpcSubnets: { subnetType: ec2.SubnetType.PRIVATE_ISOLATED },
						securityGroups: [this.props.network.computeSecurityGroup as unknown as ec2.ISecurityGroup],
					}),
			logGroup: logGroup as unknown as logs.ILogGroup,
			loggingFormat: lambda.LoggingFormat.JSON,
			tracing: this.props.tracing ? lambda.Tracing.ACTIVE : lambda.Tracing.DISABLED,
			...(options.deadLetterQueue
				? { deadLetterQueueEnabled: true, deadLetterQueue: options.deadLetterQueue as unknown as sqs.IQueue }
				: {}),
			retryAttempts: options.retryAttempts,
			code: this.code(name),
			handler: "index.handler",
			environment: { ...this.props.environment, ...options.environment, NODE_OPTIONS: "--enable-source-maps" },
		});
		if (!this.props.runtime.runtimeEquals(lambda.Runtime.NODEJS_LATEST)) {
			Validations.of(fn).acknowledge({
				id: "AwsSolutions::AwsSolutions-L1",
				reason: `${this.props.runtime.name}: the handlers share lib/core with the Batch image, which runs the same Node.js line; L1 only asks for the newest runtime CDK knows`,
			});
		}
		return fn;
	}

	/** The bundled handler, or a stub that throws (with a synth warning) when its file is missing. */
	private code(name: ScanFunctionName): lambda.Code {
		const entry = this.entry(name);
		if (existsSync(entry)) {
			// Every present handler in one esbuild build, on the first function that needs one.
			this.bundles ??= bundleHandlers(
				new Map(FUNCTION_NAMES.map((n) => [n, this.entry(n)] as const).filter(([, e]) => existsSync(e))),
				this.props.projectRoot,
			);
			const dir = this.bundles.get(name);
			if (dir) return lambda.Code.fromAsset(dir);
		}
		Annotations.of(this.scope).addWarningV2(
			`ftguard:missing-handler-${name}`,
			`${entry} does not exist: the ${name} function is a stub that throws, so every scan ends QUARANTINED with an error`,
		);
		return lambda.Code.fromInline(
			`exports.handler = async () => { throw new Error("ftguard: lambdas/${name}.ts was not built into this deployment"); };`,
		);
	}

	private entry(name: ScanFunctionName): string {
		return join(this.props.handlersDir, `${name}.ts`);
	}
}

/** ENI management for a VPC function (what AWSLambdaVPCAccessExecutionRole grants, without a managed policy). */
/** A dead-letter queue for a function's undeliverable events and failed async invocations (14 days, SSE, TLS only). */
export function deadLetterQueue(scope: Construct, id: string): sqs.Queue {
	return new sqs.Queue(scope, id, {
		encryption: sqs.QueueEncryption.SQS_MANAGED,
		enforceSSL: true,
		retentionPeriod: Duration.days(14),
	});
}

export function grantVpcAccess(role: iam.Role): void {
	role.addToPrincipalPolicy(
		new iam.PolicyStatement({
			actions: [
				"ec2:CreateNetworkInterface",
				"ec2:DescribeNetworkInterfaces",
				"ec2:DescribeSubnets",
				"ec2:DeleteNetworkInterface",
				"ec2:AssignPrivateIpAddresses",
				"ec2:UnassignPrivateIpAddresses",
			],
			resources: ["*"],
		}),
	);
	Validations.of(role).acknowledge({
		id: "AwsSolutions::AwsSolutions-IAM5[Resource::*]",
		reason:
			"Lambda in a VPC manages its ENIs with these EC2 actions (the statement of AWSLambdaVPCAccessExecutionRole; Describe* have no resource-level permissions), and X-Ray, when enabled, accepts segments only on *",
	});
}
