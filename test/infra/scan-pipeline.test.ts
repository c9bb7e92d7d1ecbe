import { createHash } from "node:crypto";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { type App, Duration, Stack, Validations } from "aws-cdk-lib";
import { Match, Template } from "aws-cdk-lib/assertions";
import * as lambda from "aws-cdk-lib/aws-lambda";
import { AwsSolutionsChecks } from "cdk-nag";
import { beforeAll, describe, expect, it } from "vitest";
import { BASE_MODEL_MARKER_SUFFIX, MARKER_SUFFIXES, MetricName } from "../../lib/core/pipeline/names.js";
import { defaultPolicy } from "../../lib/core/policy/index.js";
import { Alarms } from "../../lib/infra/alarms.js";
import { CheckpointStore } from "../../lib/infra/checkpoint-store.js";
import { IsolatedNetwork } from "../../lib/infra/isolated-network.js";
import { ScanPipeline } from "../../lib/infra/scan-pipeline.js";
import type { ScanPipelineProps } from "../../lib/infra/scan-pipeline-props.js";
import { FtguardStack } from "../../lib/infra/stack.js";
import { LAMBDA_STEPS } from "../../lib/infra/state-machine.js";
import { logicalId, newApp, newStack, sharedFtguard } from "./helpers/stack.js";

let stack: FtguardStack;
let template: Template;
let resources: Record<string, { Type: string; Properties: Record<string, unknown> }>;

beforeAll(() => {
	({ stack, template } = sharedFtguard());
	resources = template.toJSON().Resources;
});

function propsOf(construct: { node: { defaultChild?: unknown } }): Record<string, unknown> {
	const resource = resources[logicalId(construct)];
	if (!resource) throw new Error(`no resource ${logicalId(construct)}`);
	return resource.Properties;
}

const ofType = (type: string) => Object.entries(resources).filter(([, r]) => r.Type === type);
const pipeline = () => stack.scanPipeline;

function pipelineIn(props: Partial<ScanPipelineProps> = {}) {
	const s = newStack();
	const store = new CheckpointStore(s, "Store");
	const network = new IsolatedNetwork(s, "Network", { buckets: store.dataBuckets, s3PrefixListId: "pl-63a5400a" });
	const alarms = new Alarms(s, "Alarms");
	return () => new ScanPipeline(s, "ScanPipeline", { store, network, alarms, ...props });
}

describe("the scan functions", () => {
	it("run Node.js on ARM64 in the isolated subnets with the compute security group and reserved concurrency", () => {
		const subnets = stack.network.subnets.subnets.map((sn) => ({ Ref: logicalId(sn as never) }));
		for (const step of LAMBDA_STEPS) {
			const fn = pipeline().functions[step];
			const props = propsOf(fn);
			expect(props.Runtime, step).toBe("nodejs22.x");
			expect(props.Architectures, step).toEqual(["arm64"]);
			expect(props.ReservedConcurrentExecutions, step).toBe(10);
			expect(props.VpcConfig, step).toEqual({
				SubnetIds: expect.arrayContaining(subnets),
				SecurityGroupIds: [{ "Fn::GetAtt": [logicalId(stack.network.computeSecurityGroup), "GroupId"] }],
			});
			expect((props.VpcConfig as { SubnetIds: unknown[] }).SubnetIds).toHaveLength(subnets.length);
			expect(props.Handler).toBe("index.handler");
			expect(props.TracingConfig).toEqual({ Mode: "Active" });
			expect(props.LoggingConfig).toMatchObject({ LogFormat: "JSON", LogGroup: { Ref: expect.any(String) } });
		}
	});

	it("are sized for multi-GiB checkpoints where they read them (manifest, files: 15 min, ≥ 3 GB)", () => {
		for (const step of ["manifest", "files"] as const) {
			const props = resources[logicalId(pipeline().functions[step])]?.Properties ?? {};
			expect(props.Timeout, step).toBe(900);
			expect(props.MemorySize as number, step).toBeGreaterThanOrEqual(3008);
		}
		const files = propsOf(pipeline().functions.files);
		expect(files.EphemeralStorage).toEqual({ Size: 10240 });
	});

	it("carry Powertools, report and policy settings in their environment, and no bucket the handlers do not read", () => {
		const env = (
			propsOf(pipeline().functions.signature).Environment as {
				Variables: Record<string, unknown>;
			}
		).Variables;
		expect(env).toMatchObject({
			POWERTOOLS_SERVICE_NAME: "ftguard",
			POWERTOOLS_METRICS_NAMESPACE: "ftguard",
			FTGUARD_REPORT_BUCKET: { Ref: logicalId(stack.store.reportBucket) },
			FTGUARD_REPORT_PREFIX: "scans/",
			FTGUARD_POLICY_URI: expect.anything(),
			NODE_OPTIONS: "--enable-source-maps",
		});
		expect(Object.keys(env).filter((name) => name.endsWith("_BUCKET"))).toEqual(["FTGUARD_REPORT_BUCKET"]);
		const start = (
			propsOf(pipeline().startFunction).Environment as {
				Variables: Record<string, unknown>;
			}
		).Variables;
		expect(start.FTGUARD_STATE_MACHINE_ARN).toEqual({ Ref: logicalId(pipeline().stateMachine) });
	});

	it("run as the verdict role (mark, record), the scanner role (manifest, signature, files) and their own (decide, start)", () => {
		const role = (step: (typeof LAMBDA_STEPS)[number]) =>
			(propsOf(pipeline().functions[step]).Role as { "Fn::GetAtt": string[] })["Fn::GetAtt"][0];
		expect(role("mark")).toBe(logicalId(stack.store.verdictRole));
		expect(role("record")).toBe(logicalId(stack.store.verdictRole));
		for (const step of ["manifest", "signature", "files"] as const)
			expect(role(step)).toBe(logicalId(stack.store.scannerRole));
		expect(role("decide")).toBe(logicalId(pipeline().decideRole));
	});

	it("decide reads exactly one kind of object: the backdoor jobs' report.json of a scan", () => {
		const role = { Ref: logicalId(pipeline().decideRole) };
		const statements = ofType("AWS::IAM::Policy")
			.filter(([, p]) => (p.Properties.Roles as unknown[]).some((r) => JSON.stringify(r) === JSON.stringify(role)))
			.flatMap(([, p]) => (p.Properties.PolicyDocument as { Statement: Record<string, unknown>[] }).Statement)
			.filter((st) => JSON.stringify(st.Action).includes("s3:"));
		// CDK merges the two GetObject grants: the backdoor reports and the deployed policy object, nothing else.
		expect(statements).toHaveLength(1);
		expect(statements[0]).toMatchObject({ Action: "s3:GetObject", Effect: "Allow" });
		const resources = statements[0]?.Resource as unknown[];
		expect(resources).toHaveLength(2);
		expect(resources).toContainEqual({
			"Fn::Join": [
				"",
				[{ "Fn::GetAtt": [logicalId(stack.store.reportBucket), "Arn"] }, "/scans/*/backdoor/*/report.json"],
			],
		});
		expect(JSON.stringify(resources.filter((r) => !JSON.stringify(r).includes("/scans/")))).toContain(
			"/ftguard/policy/",
		);
	});

	it("start outside the VPC (it reads no object), on ARM64, sending failed async invocations to its dead-letter queue", () => {
		const props = propsOf(pipeline().startFunction);
		expect(props.VpcConfig).toBeUndefined();
		expect(props.Architectures).toEqual(["arm64"]);
		expect(props.ReservedConcurrentExecutions).toBe(10);
		expect(props.Role).toEqual({ "Fn::GetAtt": [logicalId(pipeline().startRole), "Arn"] });
		expect(props.DeadLetterConfig).toEqual({
			TargetArn: { "Fn::GetAtt": [logicalId(pipeline().startDeadLetterQueue), "Arn"] },
		});
		template.hasResourceProperties("AWS::SQS::Queue", { SqsManagedSseEnabled: true });
	});

	it("log to log groups encrypted with the pipeline's key", () => {
		const key = logicalId(pipeline().logKey);
		const groups = ofType("AWS::Logs::LogGroup").filter(([id]) => id.startsWith("ScanPipeline"));
		// functions, start, sweep, base-model, dataset, state machine, backdoor Batch job, dataset Batch job
		expect(groups.length).toBe(LAMBDA_STEPS.length + 7);
		for (const [id, group] of groups) {
			expect(group.Properties.KmsKeyId, id).toEqual({ "Fn::GetAtt": [key, "Arn"] });
			expect(group.Properties.RetentionInDays, id).toBe(365);
		}
	});
});

describe("the commit-marker rule", () => {
	it("matches Object Created of the start handler's markers (*/model.sig, *.sigstore.json) in the checkpoint bucket only", () => {
		template.hasResourceProperties("AWS::Events::Rule", {
			EventPattern: {
				source: ["aws.s3"],
				"detail-type": ["Object Created"],
				detail: {
					bucket: { name: [{ Ref: logicalId(stack.store.checkpointBucket) }] },
					object: { key: [{ suffix: "/model.sig" }, { suffix: ".sigstore.json" }] },
				},
			},
			State: "ENABLED",
			Targets: [
				Match.objectLike({
					Arn: { "Fn::GetAtt": [logicalId(pipeline().startFunction), "Arn"] },
					DeadLetterConfig: { Arn: { "Fn::GetAtt": [logicalId(pipeline().startDeadLetterQueue), "Arn"] } },
					RetryPolicy: { MaximumRetryAttempts: 8, MaximumEventAgeInSeconds: 21600 },
				}),
			],
		});
	});

	it("uses exactly the suffixes the start handler treats as markers", () => {
		const rule = ofType("AWS::Events::Rule")[0]?.[1].Properties.EventPattern as {
			detail: { object: { key: { suffix: string }[] } };
		};
		expect(rule.detail.object.key.map((k) => k.suffix)).toEqual([...MARKER_SUFFIXES]);
	});
});

describe("the base-model gate", () => {
	it("base-model markers (*/ftguard-base-model.json) in the base-model bucket invoke the base-model function", () => {
		expect(BASE_MODEL_MARKER_SUFFIX).toBe("/ftguard-base-model.json");
		template.hasResourceProperties("AWS::Events::Rule", {
			EventPattern: {
				source: ["aws.s3"],
				"detail-type": ["Object Created"],
				detail: {
					bucket: { name: [{ Ref: logicalId(stack.store.baseModelBucket) }] },
					object: { key: [{ suffix: BASE_MODEL_MARKER_SUFFIX }] },
				},
			},
			State: "ENABLED",
			Targets: [
				Match.objectLike({
					Arn: { "Fn::GetAtt": [logicalId(pipeline().baseModelFunction), "Arn"] },
					DeadLetterConfig: { Arn: { "Fn::GetAtt": [logicalId(pipeline().baseModelDeadLetterQueue), "Arn"] } },
				}),
			],
		});
		expect(propsOf(stack.store.baseModelBucket).NotificationConfiguration).toEqual({
			EventBridgeConfiguration: { EventBridgeEnabled: true },
		});
	});
	it("runs in the isolated subnets as the gate role, with the policy URI", () => {
		const fn = propsOf(pipeline().baseModelFunction);
		expect(logicalId(pipeline().baseModelFunction)).toMatch(/^ScanPipelineBaseModelFunction[0-9A-F]{8}$/);
		expect(fn.Role).toEqual({ "Fn::GetAtt": [logicalId(stack.store.baseModelGateRole), "Arn"] });
		expect(fn.VpcConfig).toBeDefined();
		expect((fn.Environment as { Variables: Record<string, unknown> }).Variables.FTGUARD_POLICY_URI).toBeDefined();
	});
});

describe("the state machine", () => {
	it("is a STANDARD workflow with an execution timeout, logging ALL to an encrypted group, and X-Ray", () => {
		const props = propsOf(pipeline().stateMachine);
		expect(props.StateMachineType).toBe("STANDARD");
		expect(props.LoggingConfiguration).toEqual({
			Level: "ALL",
			IncludeExecutionData: true,
			Destinations: [
				{
					CloudWatchLogsLogGroup: {
						LogGroupArn: { "Fn::GetAtt": [logicalId(pipeline().stateMachineLogGroup), "Arn"] },
					},
				},
			],
		});
		expect(props.TracingConfiguration).toEqual({ Enabled: true });
		expect(JSON.stringify(props.DefinitionString)).toContain('\\"TimeoutSeconds\\":28800');
	});

	it("rejects timeouts that cannot hold a scan", () => {
		expect(pipelineIn({ backdoorTimeout: Duration.hours(1) })).toThrow(/backdoorTimeout/);
		expect(pipelineIn({ executionTimeout: Duration.hours(1) })).toThrow(/executionTimeout/);
		expect(pipelineIn({ backdoorJob: { attempts: 0 } })).toThrow(/attempts/);
		expect(pipelineIn({ backdoorJob: { gpus: 0 } })).toThrow(/gpus/);
		expect(pipelineIn({ reservedConcurrency: 0 })).toThrow(/reservedConcurrency/);
		expect(pipelineIn({ runtime: lambda.Runtime.PYTHON_3_12 })).toThrow(/Node\.js runtime/);
	});
});

describe("the sweeper", () => {
	const sweepProps = () => propsOf(pipeline().sweepFunction);
	const sweeperStatements = () =>
		ofType("AWS::IAM::Policy")
			.filter(([, p]) =>
				(p.Properties.Roles as unknown[]).some(
					(r) => JSON.stringify(r) === JSON.stringify({ Ref: logicalId(stack.store.sweeperRole) }),
				),
			)
			.flatMap(([, p]) => (p.Properties.PolicyDocument as { Statement: Record<string, unknown>[] }).Statement);

	it("runs every 15 minutes with a lookback of four intervals, its failures to a dead-letter queue", () => {
		template.hasResourceProperties("AWS::Events::Rule", {
			ScheduleExpression: "rate(15 minutes)",
			State: "ENABLED",
			Targets: [
				Match.objectLike({
					Arn: { "Fn::GetAtt": [logicalId(pipeline().sweepFunction), "Arn"] },
					Input: JSON.stringify({ lookbackMinutes: 60 }),
					DeadLetterConfig: { Arn: { "Fn::GetAtt": [logicalId(pipeline().sweepDeadLetterQueue), "Arn"] } },
					RetryPolicy: Match.objectLike({ MaximumRetryAttempts: 2 }),
				}),
			],
		});
		expect(sweepProps().DeadLetterConfig).toEqual({
			TargetArn: { "Fn::GetAtt": [logicalId(pipeline().sweepDeadLetterQueue), "Arn"] },
		});
	});

	it("is one Node.js ARM64 function at a time, outside the VPC, as the store's sweeper role, under the interval", () => {
		const props = sweepProps();
		expect(props).toMatchObject({
			Runtime: "nodejs22.x",
			Architectures: ["arm64"],
			ReservedConcurrentExecutions: 1,
			Handler: "index.handler",
			Role: { "Fn::GetAtt": [logicalId(stack.store.sweeperRole), "Arn"] },
		});
		expect(props.VpcConfig).toBeUndefined();
		expect(props.Timeout as number).toBeLessThan(15 * 60);
		const env = (props.Environment as { Variables: Record<string, unknown> }).Variables;
		expect(env.FTGUARD_STATE_MACHINE_ARN).toEqual({ Ref: logicalId(pipeline().stateMachine) });
		expect(env.FTGUARD_MAX_EXECUTION_SECONDS).toBe(String(8 * 3600)); // backdoorTimeout 6 h + 2 h
		expect(env.POWERTOOLS_METRICS_NAMESPACE).toBe("ftguard");
		expect(env.POWERTOOLS_SERVICE_NAME).toBe("ftguard");
	});

	it("emits the metric the stuck-scan alarm watches", () => {
		// the handler runs lib/core/pipeline/sweep.ts runSweep, which emits it
		const handler = readFileSync(join(import.meta.dirname, "../../lambdas/sweep.ts"), "utf8");
		expect(handler).toContain("runSweep(");
		const run = readFileSync(join(import.meta.dirname, "../../lib/core/pipeline/sweep.ts"), "utf8");
		expect(run).toContain("MetricName.SCANS_STUCK_IN_SCANNING");
		template.hasResourceProperties("AWS::CloudWatch::Alarm", {
			Namespace: "ftguard",
			MetricName: MetricName.SCANS_STUCK_IN_SCANNING,
			Dimensions: [{ Name: "service", Value: "ftguard" }],
		});
	});

	it("may list and read this state machine's executions only, and tag checkpoints, nothing else", () => {
		const statements = sweeperStatements();
		const machine = logicalId(pipeline().stateMachine);
		expect(statements).toContainEqual(
			expect.objectContaining({ Action: "states:ListExecutions", Effect: "Allow", Resource: { Ref: machine } }),
		);
		const reads = statements.find((st) => JSON.stringify(st.Action).includes("states:DescribeExecution"));
		expect(reads?.Action).toEqual(["states:DescribeExecution", "states:GetExecutionHistory"]);
		expect(JSON.stringify(reads?.Resource)).toContain(`:execution:`);
		expect(JSON.stringify(reads?.Resource)).toContain(JSON.stringify({ "Fn::GetAtt": [machine, "Name"] }));
		const actions = statements.flatMap((st) => [st.Action].flat() as string[]);
		expect(actions.filter((a) => a.startsWith("s3:")).sort()).toEqual([
			"s3:GetObjectTagging",
			"s3:GetObjectVersionTagging",
			"s3:PutObjectTagging",
			"s3:PutObjectVersionTagging",
		]);
		expect(actions.filter((a) => a.startsWith("states:")).sort()).toEqual([
			"states:DescribeExecution",
			"states:GetExecutionHistory",
			"states:ListExecutions",
		]);
		expect(actions.some((a) => a.startsWith("kms:") || a.endsWith("*"))).toBe(false);
	});

	it("refuses an interval it cannot keep up with or report on", () => {
		expect(pipelineIn({ sweepInterval: Duration.minutes(2) })).toThrow(/sweepInterval/);
		expect(pipelineIn({ sweepInterval: Duration.seconds(450) })).toThrow(/sweepInterval/);
		expect(pipelineIn({ sweepInterval: Duration.hours(2) })).toThrow(/sweepInterval/);
	});
});

describe("the backdoor Batch job", () => {
	it("needs a GPU, runs as the backdoor job role, logs to the encrypted group and times out each attempt", () => {
		template.hasResourceProperties("AWS::Batch::JobDefinition", {
			Type: "container",
			PlatformCapabilities: ["EC2"],
			ContainerProperties: Match.objectLike({
				ResourceRequirements: Match.arrayWith([{ Type: "GPU", Value: "1" }]),
				JobRoleArn: { "Fn::GetAtt": [logicalId(stack.store.backdoorJobRole), "Arn"] },
				Environment: Match.arrayWith([{ Name: "FTGUARD_DEVICE", Value: "cuda" }]),
				LogConfiguration: Match.objectLike({
					LogDriver: "awslogs",
					Options: Match.objectLike({ "awslogs-group": { Ref: logicalId(pipeline().jobLogGroup) } }),
				}),
			}),
			Timeout: { AttemptDurationSeconds: 7200 },
			PropagateTags: true,
		});
	});

	it("retries host failures only: exit 1 (suspect), 2 (error) and anything else end the job", () => {
		template.hasResourceProperties("AWS::Batch::JobDefinition", {
			RetryStrategy: {
				Attempts: 3,
				EvaluateOnExit: [
					{ Action: "RETRY", OnStatusReason: "Host EC2*" },
					{ Action: "EXIT", OnExitCode: "1" },
					{ Action: "EXIT", OnExitCode: "2" },
					{ Action: "EXIT", OnReason: "*" },
				],
			},
		});
	});

	it("runs on GPU instances from zero in the isolated subnets, launched with IMDSv2 required", () => {
		const subnets = stack.network.subnets.subnets.map((sn) => ({ Ref: logicalId(sn as never) }));
		template.hasResourceProperties("AWS::Batch::ComputeEnvironment", {
			Type: "managed",
			ComputeResources: Match.objectLike({
				Type: "EC2",
				MinvCpus: 0,
				MaxvCpus: 64,
				InstanceTypes: ["g5", "g6"],
				Subnets: Match.arrayEquals(subnets),
				SecurityGroupIds: [{ "Fn::GetAtt": [logicalId(stack.network.computeSecurityGroup), "GroupId"] }],
				Ec2Configuration: [{ ImageType: "ECS_AL2023_NVIDIA" }],
				LaunchTemplate: Match.objectLike({ LaunchTemplateId: { Ref: logicalId(pipeline().launchTemplate) } }),
			}),
		});
		template.hasResourceProperties("AWS::EC2::LaunchTemplate", {
			LaunchTemplateData: Match.objectLike({
				MetadataOptions: { HttpTokens: "required", HttpPutResponseHopLimit: 1 },
				BlockDeviceMappings: [
					{ DeviceName: "/dev/xvda", Ebs: Match.objectLike({ Encrypted: true, VolumeType: "gp3" }) },
				],
			}),
		});
		template.hasResourceProperties("AWS::Batch::JobQueue", {
			ComputeEnvironmentOrder: [{ ComputeEnvironment: Match.anyValue(), Order: 1 }],
		});
	});

	it("builds its image from batch-jobs/backdoor-scan/Dockerfile with only what that Dockerfile copies as context", () => {
		const assembly = (stack.node.root as App).synth();
		const manifest = JSON.parse(readFileSync(join(assembly.directory, "Ftguard.assets.json"), "utf8")) as {
			dockerImages: Record<string, { source: { directory: string; dockerFile: string; platform?: string } }>;
		};
		// two images: this one and the dataset gate's (test/infra/dataset-gate.test.ts)
		const images = Object.values(manifest.dockerImages).filter((i) => i.source.dockerFile.includes("backdoor-scan"));
		expect(images).toHaveLength(1);
		expect(images[0]?.source).toMatchObject({
			dockerFile: "batch-jobs/backdoor-scan/Dockerfile",
			platform: "linux/amd64",
		});
		const context = readdirSync(join(assembly.directory, images[0]?.source.directory ?? "")).sort();
		expect(context).toEqual(["batch-jobs", "lib", "package-lock.json", "package.json"]);
	});
});

describe("the policy", () => {
	it("is deployed content-addressed to the base-model bucket and passed as FTGUARD_POLICY_URI", () => {
		const json = `${JSON.stringify(defaultPolicy(), null, "\t")}\n`;
		const key = `ftguard/policy/${createHash("sha256").update(json).digest("hex")}.json`;
		const [, custom] = ofType("Custom::AWS").find(([id]) => id.includes("PolicyDeployment")) ?? [];
		expect(JSON.stringify(custom?.Properties.Create)).toContain(key);
		expect(JSON.stringify(custom?.Properties.Create)).toContain('\\"action\\":\\"PutObject\\"');
		expect(pipeline().policyUri).toContain(key);
		expect(pipeline().policy).toEqual(defaultPolicy());
	});

	it("is validated at synth: an invalid policy throws", () => {
		expect(pipelineIn({ policy: { version: 2 } })).toThrow(/ScanPipeline policy/);
		expect(pipelineIn({ policy: { backdoor: { detectors: [] } } })).toThrow(/ScanPipeline policy/);
		// a policy whose every image scan the calibrated rule would refuse fails at synth, not in production
		expect(pipelineIn({ policy: { backdoor: { neuralCleanse: { steps: 50 } } } })).toThrow(
			/calibrated verdict holds for the search it was fitted on/,
		);
	});

	it("sets the Batch job's detectors and search effort", () => {
		const p = pipelineIn({
			policy: { backdoor: { detectors: ["nc"], neuralCleanse: { steps: 50, rule: "ftguard" } } },
		})();
		const text = JSON.stringify(Template.fromStack(Stack.of(p)).toJSON());
		expect(text).toContain(String.raw`\"Name\":\"FTGUARD_DETECTORS\",\"Value\":\"nc\"`);
		expect(text).toContain(String.raw`\"Name\":\"FTGUARD_STEPS\",\"Value\":\"50\"`);
	});
});

describe("the alarms", () => {
	it("fire on a failed or timed-out execution, a dead letter, stuck scans and scan errors", () => {
		const alarm = (metricName: string, extra: Record<string, unknown> = {}) =>
			template.hasResourceProperties("AWS::CloudWatch::Alarm", {
				MetricName: metricName,
				Threshold: 1,
				ComparisonOperator: "GreaterThanOrEqualToThreshold",
				...extra,
			});
		alarm("ExecutionsFailed", { Namespace: "AWS/States" });
		alarm("ExecutionsTimedOut", { Namespace: "AWS/States" });
		alarm("ApproximateNumberOfMessagesVisible", {
			Namespace: "AWS/SQS",
			Dimensions: [
				{ Name: "QueueName", Value: { "Fn::GetAtt": [logicalId(pipeline().startDeadLetterQueue), "QueueName"] } },
			],
		});
		alarm("ApproximateNumberOfMessagesVisible", {
			Namespace: "AWS/SQS",
			Dimensions: [
				{ Name: "QueueName", Value: { "Fn::GetAtt": [logicalId(pipeline().sweepDeadLetterQueue), "QueueName"] } },
			],
		});
		alarm("ApproximateNumberOfMessagesVisible", {
			Namespace: "AWS/SQS",
			Dimensions: [
				{ Name: "QueueName", Value: { "Fn::GetAtt": [logicalId(pipeline().baseModelDeadLetterQueue), "QueueName"] } },
			],
		});
		alarm("scans_stuck_in_scanning", { TreatMissingData: "breaching", EvaluationPeriods: 1, Period: 1800 });
		alarm("scan_errors_total", { Namespace: "ftguard" });
		alarm("ApproximateNumberOfMessagesVisible", {
			Namespace: "AWS/SQS",
			Dimensions: [
				{ Name: "QueueName", Value: { "Fn::GetAtt": [logicalId(pipeline().datasetDeadLetterQueue), "QueueName"] } },
			],
		});
		// and the dataset gate's failed Batch jobs (test/infra/dataset-gate.test.ts)
		expect(pipeline().pipelineAlarms).toHaveLength(9);
	});
});

describe("cdk-nag AwsSolutions", () => {
	it("finds nothing unacknowledged with X-Ray off, Node.js 22 and missing handlers", () => {
		const app = newApp();
		const s = new FtguardStack(app, "Ftguard", {
			network: { s3PrefixListId: "pl-63a5400a" },
			scanPipeline: { tracing: false, runtime: lambda.Runtime.NODEJS_22_X, handlersDir: "/nonexistent" },
		});
		Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
		expect(() => app.synth()).not.toThrow();
		const fn = s.scanPipeline.functions.mark.node.defaultChild as lambda.CfnFunction;
		expect(fn.runtime).toBe("nodejs22.x");
		expect(JSON.stringify(fn.code)).toContain("was not built into this deployment");
	});
});
