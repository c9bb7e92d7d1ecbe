import { readFileSync } from "node:fs";
import { join } from "node:path";
import { runSimulation } from "@cloud-copilot/iam-simulate";
import type { App } from "aws-cdk-lib";
import { Match, type Template } from "aws-cdk-lib/assertions";
import { beforeAll, describe, expect, it } from "vitest";
import { datasetMetricDocuments } from "../../lib/core/pipeline/dataset.js";
import {
	DATASET_ENV,
	DATASET_GATE_NAMES,
	DATASET_LINEAGE,
	DATASET_MARKER,
	DATASET_MARKER_SUFFIX,
	DATASET_REPORT,
	METRIC_NAMESPACE,
	MetricName,
} from "../../lib/core/pipeline/names.js";
import { DATASET_JOB } from "../../lib/infra/dataset-gate.js";
import { FUNCTION_SIZING } from "../../lib/infra/scan-functions.js";
import type { FtguardStack } from "../../lib/infra/stack.js";
import { RESERVED_CONCURRENCY } from "../../lib/infra/tags.js";
import { ACCOUNT, type CfnTemplate, decide, TemplateResolver } from "./helpers/iam.js";
import { logicalId, sharedFtguard } from "./helpers/stack.js";

// The dataset gate (lib/infra/dataset-gate.ts) in the default FtguardStack: its rule, function, Batch queue and job,
// the alarm on failed jobs. What its role may do is proven with iam-simulate in policies.test.ts.

let stack: FtguardStack;
let template: Template;
let resources: Record<string, { Type: string; Properties: Record<string, unknown> }>;

beforeAll(() => {
	({ stack, template } = sharedFtguard());
	resources = template.toJSON().Resources;
});

const gate = () => stack.scanPipeline.datasetGate;
function propsOf(construct: { node: { defaultChild?: unknown } }): Record<string, unknown> {
	const resource = resources[logicalId(construct)];
	if (!resource) throw new Error(`no resource ${logicalId(construct)}`);
	return resource.Properties;
}
const ofType = (type: string) => Object.entries(resources).filter(([, r]) => r.Type === type);
const roleArn = () => ({ "Fn::GetAtt": [logicalId(stack.store.datasetGateRole), "Arn"] });

describe("the dataset marker rule", () => {
	it("matches Object Created of */ftguard-dataset.json in the dataset bucket and invokes the dataset function", () => {
		expect(DATASET_MARKER_SUFFIX).toBe(`/${DATASET_MARKER}`);
		template.hasResourceProperties("AWS::Events::Rule", {
			EventPattern: {
				source: ["aws.s3"],
				"detail-type": ["Object Created"],
				detail: {
					bucket: { name: [{ Ref: logicalId(stack.store.datasetBucket) }] },
					object: { key: [{ suffix: "/ftguard-dataset.json" }] },
				},
			},
			State: "ENABLED",
			Targets: [
				Match.objectLike({
					Arn: { "Fn::GetAtt": [logicalId(gate().function), "Arn"] },
					DeadLetterConfig: { Arn: { "Fn::GetAtt": [logicalId(gate().deadLetterQueue), "Arn"] } },
					RetryPolicy: { MaximumRetryAttempts: 8, MaximumEventAgeInSeconds: 21600 },
				}),
			],
		});
	});
	it("receives the dataset bucket's events: the bucket sends them to EventBridge natively", () => {
		expect(propsOf(stack.store.datasetBucket).NotificationConfiguration).toEqual({
			EventBridgeConfiguration: { EventBridgeEnabled: true },
		});
	});
});

describe("the dataset function", () => {
	it("runs in the isolated subnets as the dataset gate role, sized 15 min / 4 GiB / 10 GiB, DLQ and retries", () => {
		const fn = propsOf(gate().function);
		expect(stack.scanPipeline.datasetFunction).toBe(gate().function);
		expect(logicalId(gate().function)).toMatch(/^ScanPipelineDatasetFunction[0-9A-F]{8}$/);
		expect(fn.Role).toEqual(roleArn());
		expect(fn.VpcConfig).toMatchObject({
			SecurityGroupIds: [{ "Fn::GetAtt": [logicalId(stack.network.computeSecurityGroup), "GroupId"] }],
		});
		expect(fn.Timeout).toBe(900);
		expect(fn.MemorySize).toBe(4096);
		expect(fn.EphemeralStorage).toEqual({ Size: 10240 });
		expect(FUNCTION_SIZING.dataset.timeout.toMinutes()).toBe(15);
		expect(fn.ReservedConcurrentExecutions).toBe(RESERVED_CONCURRENCY.perFunction);
		expect(fn.DeadLetterConfig).toEqual({ TargetArn: { "Fn::GetAtt": [logicalId(gate().deadLetterQueue), "Arn"] } });
		template.hasResourceProperties("AWS::Lambda::EventInvokeConfig", {
			FunctionName: { Ref: logicalId(gate().function) },
			MaximumRetryAttempts: 2,
		});
	});
	it("names the dataset job queue and this revision of the job definition, and the policy", () => {
		const env = (propsOf(gate().function).Environment as { Variables: Record<string, unknown> }).Variables;
		expect(env[DATASET_ENV.JOB_QUEUE]).toEqual({ "Fn::GetAtt": [logicalId(gate().jobQueue), "JobQueueArn"] });
		expect(env[DATASET_ENV.JOB_DEFINITION]).toEqual({ Ref: logicalId(gate().jobDefinition) });
		expect(env.FTGUARD_POLICY_URI).toBeDefined();
		expect(env).toMatchObject({ POWERTOOLS_SERVICE_NAME: "ftguard", POWERTOOLS_METRICS_NAMESPACE: "ftguard" });
		expect(env[DATASET_ENV.TARGET]).toBeUndefined(); // set per job by the submission
	});
	it("reaches Batch from the isolated subnets through an interface endpoint", () => {
		const batch = stack.network.interfaceEndpoints.Batch;
		expect(batch).toBeDefined();
		expect(JSON.stringify(propsOf(batch as never).ServiceName)).toContain(".batch");
		expect(propsOf(batch as never).PrivateDnsEnabled).toBe(true);
	});
	it("is counted in the reserved concurrency preflight checks (every function but the sweeper at perFunction)", () => {
		const perFunction = ofType("AWS::Lambda::Function").filter(
			([, f]) => f.Properties.ReservedConcurrentExecutions === RESERVED_CONCURRENCY.perFunction,
		);
		expect(perFunction).toHaveLength(RESERVED_CONCURRENCY.functionsAtPerFunction);
		expect(perFunction.map(([id]) => id)).toContain(logicalId(gate().function));
	});
});

describe("the dataset Batch job", () => {
	it("runs on Fargate from zero in the isolated subnets with the compute security group", () => {
		const subnets = stack.network.subnets.subnets.map((sn) => ({ Ref: logicalId(sn as never) }));
		expect(propsOf(gate().computeEnvironment)).toMatchObject({
			Type: "managed",
			ComputeResources: {
				Type: "FARGATE",
				MaxvCpus: DATASET_JOB.maxvCpus,
				Subnets: expect.arrayContaining(subnets),
				SecurityGroupIds: [{ "Fn::GetAtt": [logicalId(stack.network.computeSecurityGroup), "GroupId"] }],
			},
		});
		expect(propsOf(gate().jobQueue)).toMatchObject({
			ComputeEnvironmentOrder: [
				{
					ComputeEnvironment: { "Fn::GetAtt": [logicalId(gate().computeEnvironment), "ComputeEnvironmentArn"] },
					Order: 1,
				},
			],
		});
		// a job that can never be placed is cancelled (→ FAILED → the alarm), not left RUNNABLE for ever
		const actions = propsOf(gate().jobQueue).JobStateTimeLimitActions as { Action: string; State: string }[];
		expect(actions.length).toBeGreaterThan(0);
		for (const a of actions) expect(a).toMatchObject({ Action: "CANCEL", State: "RUNNABLE" });
	});
	it("runs the dataset-scan image as the dataset gate role, non-root, with the policy, 2 attempts of 6 h", () => {
		const job = propsOf(gate().jobDefinition);
		expect(job).toMatchObject({
			Type: "container",
			PlatformCapabilities: ["FARGATE"],
			Timeout: { AttemptDurationSeconds: 6 * 3600 },
			RetryStrategy: { Attempts: 2 },
			PropagateTags: true,
		});
		const container = job.ContainerProperties as Record<string, unknown>;
		expect(container).toMatchObject({
			JobRoleArn: roleArn(),
			User: "1000:1000",
			NetworkConfiguration: { AssignPublicIp: "DISABLED" },
			EphemeralStorage: { SizeInGiB: DATASET_JOB.ephemeralStorage.toGibibytes() },
			ResourceRequirements: expect.arrayContaining([
				{ Type: "VCPU", Value: String(DATASET_JOB.vcpus) },
				{ Type: "MEMORY", Value: String(DATASET_JOB.memory.toMebibytes()) },
			]),
			LogConfiguration: {
				LogDriver: "awslogs",
				Options: expect.objectContaining({ "awslogs-group": { Ref: logicalId(gate().jobLogGroup) } }),
			},
		});
		const env = Object.fromEntries(
			(container.Environment as { Name: string; Value: unknown }[]).map((e) => [e.Name, e.Value]),
		);
		const fnEnv = (propsOf(gate().function).Environment as { Variables: Record<string, unknown> }).Variables;
		expect(env.FTGUARD_POLICY_URI).toEqual(fnEnv.FTGUARD_POLICY_URI);
		expect(env).toMatchObject({ POWERTOOLS_SERVICE_NAME: "ftguard", POWERTOOLS_METRICS_NAMESPACE: "ftguard" });
		expect(env.AWS_REGION).toBeDefined();
		expect(env).not.toHaveProperty(DATASET_ENV.TARGET);
		// its own execution role pulls the image and writes the logs; the job role is not it
		expect(container.ExecutionRoleArn).toBeDefined();
		expect(container.ExecutionRoleArn).not.toEqual(roleArn());
	});
	it("builds its image from batch-jobs/dataset-scan/Dockerfile with only what that Dockerfile copies as context", () => {
		const assembly = (stack.node.root as App).synth();
		const manifest = JSON.parse(readFileSync(join(assembly.directory, "Ftguard.assets.json"), "utf8")) as {
			dockerImages: Record<string, { source: { directory: string; dockerFile: string; platform?: string } }>;
		};
		const images = Object.values(manifest.dockerImages).filter((i) => i.source.dockerFile.includes("dataset-scan"));
		expect(images).toHaveLength(1);
		expect(images[0]?.source).toMatchObject({
			dockerFile: "batch-jobs/dataset-scan/Dockerfile",
			platform: "linux/amd64",
		});
		const dockerfile = readFileSync(join(import.meta.dirname, "../../batch-jobs/dataset-scan/Dockerfile"), "utf8");
		expect(dockerfile).toContain("batch-jobs/dataset-scan/entry.ts");
		expect(dockerfile).toMatch(/^USER 1000:1000$/m);
	});
	it("the dataset gate role may submit to the dataset queue and this job definition only", () => {
		const statements = ofType("AWS::IAM::Policy")
			.filter(([, p]) =>
				(p.Properties.Roles as unknown[]).some(
					(r) => JSON.stringify(r) === JSON.stringify({ Ref: logicalId(stack.store.datasetGateRole) }),
				),
			)
			.flatMap(([, p]) => (p.Properties.PolicyDocument as { Statement: Record<string, unknown>[] }).Statement)
			.filter((st) => JSON.stringify(st.Action).includes("batch:"));
		expect(statements).toHaveLength(1);
		expect(statements[0]?.Action).toBe("batch:SubmitJob");
		const targets = statements[0]?.Resource as unknown[];
		expect(targets).toHaveLength(3);
		expect(targets).toContainEqual({ "Fn::GetAtt": [logicalId(gate().jobQueue), "JobQueueArn"] });
		expect(targets).toContainEqual({ Ref: logicalId(gate().jobDefinition) });
		expect(JSON.stringify(targets)).toContain(":job/*");
		expect(JSON.stringify(targets)).not.toContain(logicalId(stack.scanPipeline.jobQueue));
	});
	it("the dataset gate role is assumed by Lambda and by ECS tasks of this account (the job)", () => {
		const trust = propsOf(stack.store.datasetGateRole).AssumeRolePolicyDocument as {
			Statement: { Principal: { Service: string }; Condition?: Record<string, unknown> }[];
		};
		const services = trust.Statement.map((s) => s.Principal.Service).sort();
		expect(services).toEqual(["ecs-tasks.amazonaws.com", "lambda.amazonaws.com"]);
		const ecs = trust.Statement.find((s) => s.Principal.Service === "ecs-tasks.amazonaws.com");
		expect(ecs?.Condition).toMatchObject({ StringEquals: { "aws:SourceAccount": expect.anything() } });
	});
});

describe("a FAILED dataset job", () => {
	it("its Batch Job State Change event lands in a queue of its own", () => {
		template.hasResourceProperties("AWS::Events::Rule", {
			EventPattern: {
				source: ["aws.batch"],
				"detail-type": ["Batch Job State Change"],
				detail: {
					status: ["FAILED"],
					jobQueue: [{ "Fn::GetAtt": [logicalId(gate().jobQueue), "JobQueueArn"] }],
				},
			},
			State: "ENABLED",
			Targets: [Match.objectLike({ Arn: { "Fn::GetAtt": [logicalId(gate().jobFailureQueue), "Arn"] } })],
		});
		expect(propsOf(gate().jobFailureQueue)).toMatchObject({
			SqsManagedSseEnabled: true,
			MessageRetentionPeriod: 1209600,
		});
	});
	it("reaches someone: an alarm on its first message, with a runbook section", () => {
		template.hasResourceProperties("AWS::CloudWatch::Alarm", {
			Namespace: "AWS/SQS",
			MetricName: "ApproximateNumberOfMessagesVisible",
			Dimensions: [{ Name: "QueueName", Value: { "Fn::GetAtt": [logicalId(gate().jobFailureQueue), "QueueName"] } }],
			Threshold: 1,
			ComparisonOperator: "GreaterThanOrEqualToThreshold",
			AlarmActions: [{ Ref: logicalId(stack.alarms.topic) }],
			AlarmDescription: Match.stringLikeRegexp("docs/operations.md#dataset-scan-job-failed$"),
		});
		const runbook = readFileSync(join(import.meta.dirname, "../../docs/operations.md"), "utf8");
		expect(runbook).toMatch(/^## dataset-scan-job-failed$/m);
	});
});

describe("the dataset gate's own objects", () => {
	it("are the marker, the report and the lineage; the bucket policy reserves the report and lineage to the gate", () => {
		expect([...DATASET_GATE_NAMES]).toEqual([DATASET_MARKER, DATASET_REPORT, DATASET_LINEAGE]);
		const policy = ofType("AWS::S3::BucketPolicy").find(
			([, p]) => JSON.stringify(p.Properties.Bucket) === JSON.stringify({ Ref: logicalId(stack.store.datasetBucket) }),
		)?.[1].Properties.PolicyDocument as { Statement: { Sid: string; Resource: unknown }[] };
		const reserved = policy.Statement.find((s) => s.Sid === "DenyGateOutputWritesExceptGate");
		expect(JSON.stringify(reserved?.Resource)).toContain(`/*/${DATASET_REPORT}`);
		expect(JSON.stringify(reserved?.Resource)).toContain(`/*/${DATASET_LINEAGE}`);
	});
});

describe("the DatasetPoisoningFound alarm", () => {
	it("watches what the dataset gate emits ({service: ftguard}, Minimum < 1) and fires on a failing detector or an error", () => {
		const alarm = propsOf(stack.alarms.datasetPoisoningAlarm) as {
			Namespace: string;
			MetricName: string;
			Statistic: string;
			Dimensions: { Name: string; Value: string }[];
			Threshold: number;
			ComparisonOperator: string;
		};
		expect(alarm).toMatchObject({
			Namespace: METRIC_NAMESPACE,
			MetricName: MetricName.FINETUNING_DATASET_POISONING_SCAN_RESULT,
			Statistic: "Minimum",
			Dimensions: [{ Name: "service", Value: "ftguard" }],
			Threshold: 1,
			ComparisonOperator: "LessThanThreshold",
		});
		/** The points CloudWatch extracts from one EMF document that the alarm's exact metric holds (EMF specification). */
		const seen = (doc: Record<string, unknown>): number[] => {
			const directive = (
				doc._aws as { CloudWatchMetrics: { Namespace: string; Dimensions: string[][]; Metrics: { Name: string }[] }[] }
			).CloudWatchMetrics[0];
			if (!directive) throw new Error("no directive");
			const wanted = JSON.stringify(alarm.Dimensions.map((d) => [d.Name, d.Value]).sort());
			return directive.Dimensions.flatMap((set) =>
				directive.Metrics.filter(
					(m) =>
						directive.Namespace === alarm.Namespace &&
						m.Name === alarm.MetricName &&
						JSON.stringify(set.map((d) => [d, doc[d]]).sort()) === wanted,
				).map((m) => doc[m.Name] as number),
			);
		};
		const names = { source: "s", version: "v1" };
		const points = (outcome: Parameters<typeof datasetMetricDocuments>[1]) =>
			datasetMetricDocuments(names, outcome).flatMap((d) => seen(d as Record<string, unknown>));
		const fires = (values: number[]) => values.length > 0 && Math.min(...values) < alarm.Threshold;
		const clean = points({
			records: 10,
			results: [
				{ scanType: "a", pass: true },
				{ scanType: "b", pass: true },
			],
		});
		expect(clean).toEqual([1, 1]);
		expect(fires(clean)).toBe(false);
		const poisoned = points({
			records: 10,
			results: [
				{ scanType: "a", pass: true },
				{ scanType: "b", pass: false },
			],
		});
		expect(fires(poisoned)).toBe(true);
		expect(fires(points({ error: true }))).toBe(true);
	});
});

describe("the dataset gate's queues", () => {
	const resolver = () => new TemplateResolver(template.toJSON() as CfnTemplate);
	const queuePolicy = (queue: { node: { defaultChild?: unknown } }) => {
		const entry = ofType("AWS::SQS::QueuePolicy").find(([, p]) =>
			(p.Properties.Queues as { Ref?: string }[]).some((q) => q.Ref === logicalId(queue)),
		);
		if (!entry) throw new Error(`no queue policy for ${logicalId(queue)}`);
		return resolver().resolve(entry[1].Properties.PolicyDocument as never);
	};
	const arnOf = (construct: { node: { defaultChild?: unknown } }) =>
		resolver().resolve({ "Fn::GetAtt": [logicalId(construct), "Arn"] }) as string;
	/** EventBridge (the service principal) sending to `queue` on behalf of `rule`. */
	const fromRule = async (queue: { node: { defaultChild?: unknown } }, rule: { node: { defaultChild?: unknown } }) => {
		const result = await runSimulation(
			{
				request: {
					principal: "events.amazonaws.com",
					action: "sqs:SendMessage",
					resource: { resource: arnOf(queue), accountId: ACCOUNT },
					contextVariables: {
						"aws:SecureTransport": "true",
						"aws:SourceAccount": ACCOUNT,
						"aws:SourceArn": arnOf(rule),
					},
				},
				identityPolicies: [],
				serviceControlPolicies: [],
				resourceControlPolicies: [],
				resourcePolicy: queuePolicy(queue),
			},
			{ simulationMode: "Strict" },
		);
		if (result.resultType === "error") throw new Error(JSON.stringify(result.errors));
		return result.overallResult;
	};
	it("EventBridge may put FAILED-job events into the failure queue from the failed-job rule only", async () => {
		expect(await fromRule(gate().jobFailureQueue, gate().jobFailureRule)).toBe("Allowed");
		expect(await fromRule(gate().jobFailureQueue, gate().rule)).not.toBe("Allowed");
	});
	it("EventBridge may dead-letter marker events from the marker rule only", async () => {
		expect(await fromRule(gate().deadLetterQueue, gate().rule)).toBe("Allowed");
		expect(await fromRule(gate().deadLetterQueue, gate().jobFailureRule)).not.toBe("Allowed");
	});
	it("Lambda's async dead letters: the dataset gate role may send to the dataset dead-letter queue", async () => {
		const r = resolver();
		const role = logicalId(stack.store.datasetGateRole);
		const decision = await decide({
			roleArn: r.roleArn(role),
			identityPolicies: r.identityPolicies(role),
			action: "sqs:SendMessage",
			resource: arnOf(gate().deadLetterQueue),
			resourcePolicy: queuePolicy(gate().deadLetterQueue),
		});
		expect(decision).toBe("Allowed");
	});
});
