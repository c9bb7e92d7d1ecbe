/**
 * The OutputMonitor (lib/infra/output-monitor.ts) as a platform team attaches it: a log group and a capture
 * bucket (and a Bedrock large-data bucket it reads bodies from) → the monitor function (outside the VPC) → its DynamoDB table; the three alarms on the topic (a fixed
 * repetition rate, an anomaly band for suspicious outputs, any unread Bedrock body), each with its runbook section; its role checked with iam-simulate; cdk-nag clean.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { Validations } from "aws-cdk-lib";
import { Match, Template } from "aws-cdk-lib/assertions";
import { AwsSolutionsChecks } from "cdk-nag";
import { beforeAll, describe, expect, it } from "vitest";
import { MONITOR_RUNBOOK } from "../../lib/infra/output-monitor.js";
import { FtguardStack, type FtguardStackProps } from "../../lib/infra/stack.js";
import { type CfnTemplate, decide, TemplateResolver } from "./helpers/iam.js";
import { logicalId, newApp } from "./helpers/stack.js";

const PROPS: FtguardStackProps = {
	scanPipeline: {
		outputMonitor: {
			logGroupNames: ["/aws/sagemaker/Endpoints/support-bot"],
			captureBuckets: [{ name: "ml-capture", prefix: "datacapture/" }],
			bedrockLargeDataBuckets: [{ name: "bedrock-large", prefix: "invocations/" }],
		},
	},
};

let stack: FtguardStack;
let template: Template;
let resolver: TemplateResolver;
let roleId: string;
let tableId: string;
let functionId: string;

beforeAll(() => {
	const app = newApp();
	stack = new FtguardStack(app, "Ftguard", PROPS);
	Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
	// cdk-nag: nothing unacknowledged (synthesis throws on a finding)
	app.synth();
	template = Template.fromStack(stack);
	resolver = new TemplateResolver(template.toJSON() as CfnTemplate);
	const monitor = stack.scanPipeline.outputMonitor;
	if (!monitor) throw new Error("no output monitor");
	roleId = logicalId(monitor.role);
	tableId = logicalId(monitor.table);
	functionId = logicalId(monitor.function);
});

describe("OutputMonitor", () => {
	it("is absent unless attached to inference logs", () => {
		expect(new FtguardStack(newApp(), "Plain").scanPipeline.outputMonitor).toBeUndefined();
	});

	it("keeps each version's window in a DynamoDB table with TTL and point-in-time recovery", () => {
		template.hasResourceProperties("AWS::DynamoDB::Table", {
			KeySchema: [{ AttributeName: "modelVersion", KeyType: "HASH" }],
			BillingMode: "PAY_PER_REQUEST",
			TimeToLiveSpecification: { AttributeName: "expiresAt", Enabled: true },
			PointInTimeRecoverySpecification: { PointInTimeRecoveryEnabled: true },
		});
	});

	it("runs the monitor function outside the VPC, on the table, with a dead-letter queue", () => {
		const fn = template.toJSON().Resources[functionId].Properties;
		expect(fn.VpcConfig).toBeUndefined();
		expect(fn.Environment.Variables.FTGUARD_MONITOR_TABLE).toEqual({ Ref: tableId });
		expect(JSON.stringify(fn.Environment.Variables.FTGUARD_POLICY_URI)).toContain("/ftguard/policy/");
		expect(fn.DeadLetterConfig).toBeDefined();
		// the only places a Bedrock record's body in S3 is read from (lib/aws/monitor.ts largeDataLocations)
		expect(JSON.parse(fn.Environment.Variables.FTGUARD_MONITOR_LARGE_DATA)).toEqual([
			{ name: "bedrock-large", prefix: "invocations/" },
		]);
	});

	it("subscribes to the log group and to the capture bucket's Object Created events", () => {
		template.hasResourceProperties("AWS::Logs::SubscriptionFilter", {
			LogGroupName: "/aws/sagemaker/Endpoints/support-bot",
			FilterPattern: "",
			DestinationArn: { "Fn::GetAtt": [functionId, "Arn"] },
		});
		template.hasResourceProperties("AWS::Lambda::Permission", {
			Principal: "logs.amazonaws.com",
			FunctionName: { "Fn::GetAtt": [functionId, "Arn"] },
		});
		template.hasResourceProperties("AWS::Events::Rule", {
			EventPattern: {
				source: ["aws.s3"],
				"detail-type": ["Object Created"],
				detail: { bucket: { name: ["ml-capture"] }, object: { key: [{ prefix: "datacapture/" }] } },
			},
		});
	});

	it("alarms on repetition above the policy's rate, and on suspicious outputs above their anomaly band", () => {
		const topic = { Ref: logicalId(stack.alarms.topic) };
		template.hasResourceProperties("AWS::CloudWatch::Alarm", {
			MetricName: "deployed_model_output_repetition_rate",
			Namespace: "ftguard",
			Dimensions: [{ Name: "service", Value: "ftguard" }],
			Statistic: "Maximum",
			Threshold: 0.05,
			ComparisonOperator: "GreaterThanThreshold",
			AlarmActions: [topic],
			AlarmDescription: Match.stringLikeRegexp("#output-repetition$"),
		});
		template.hasResourceProperties("AWS::CloudWatch::Alarm", {
			ComparisonOperator: "GreaterThanUpperThreshold",
			ThresholdMetricId: Match.anyValue(),
			AlarmActions: [topic],
			AlarmDescription: Match.stringLikeRegexp("#suspicious-outputs$"),
			Metrics: Match.arrayWith([
				Match.objectLike({ Expression: Match.stringLikeRegexp("^ANOMALY_DETECTION_BAND\\(m\\w*, 3\\)$") }),
				Match.objectLike({
					MetricStat: Match.objectLike({
						Metric: {
							MetricName: "deployed_model_suspicious_output_total",
							Namespace: "ftguard",
							Dimensions: [{ Name: "service", Value: "ftguard" }],
						},
						Stat: "Sum",
					}),
				}),
			]),
		});
	});

	it("alarms on any Bedrock record whose output body it could not read (reason=unread), and on no malformed line", () => {
		const monitor = stack.scanPipeline.outputMonitor;
		const alarm = template.toJSON().Resources[logicalId(monitor?.unreadRecordsAlarm as never)].Properties;
		expect(alarm).toMatchObject({
			MetricName: "output_monitor_unwatched_records_total",
			Namespace: "ftguard",
			Statistic: "Sum",
			Period: 300,
			Threshold: 0,
			ComparisonOperator: "GreaterThanThreshold",
			EvaluationPeriods: 1,
			TreatMissingData: "notBreaching",
			AlarmActions: [{ Ref: logicalId(stack.alarms.topic) }],
			OKActions: [{ Ref: logicalId(stack.alarms.topic) }],
		});
		expect(alarm.AlarmDescription).toMatch(/Runbook: docs\/operations\.md#output-monitor-unread$/);
		const dims = [...alarm.Dimensions].sort((a: { Name: string }, b: { Name: string }) => (a.Name < b.Name ? -1 : 1));
		expect(dims).toEqual([
			{ Name: "reason", Value: "unread" },
			{ Name: "service", Value: "ftguard" },
		]);
		// malformed lines are only counted: no alarm watches them
		const onUnwatched = Object.values(template.findResources("AWS::CloudWatch::Alarm")).filter(
			(a) => (a as { Properties: { MetricName?: string } }).Properties.MetricName === alarm.MetricName,
		);
		expect(onUnwatched).toHaveLength(1);
	});

	it("has a runbook section for each of its alarms", () => {
		const runbook = readFileSync(join(import.meta.dirname, "../../docs/operations.md"), "utf8");
		for (const anchor of Object.values(MONITOR_RUNBOOK)) expect(runbook).toMatch(new RegExp(`^## ${anchor}$`, "m"));
	});

	describe("its role (iam-simulate)", () => {
		const as = (action: string, resource: string) =>
			decide({
				roleArn: resolver.roleArn(roleId),
				identityPolicies: resolver.identityPolicies(roleId),
				action,
				resource,
			});
		const table = () => `arn:aws:dynamodb:us-east-1:111122223333:table/${tableId}`;

		it("reads and writes items of its table only: no scan, no delete, no other table", async () => {
			expect(await as("dynamodb:GetItem", table())).toBe("Allowed");
			expect(await as("dynamodb:PutItem", table())).toBe("Allowed");
			expect(await as("dynamodb:DeleteItem", table())).not.toBe("Allowed");
			expect(await as("dynamodb:Scan", table())).not.toBe("Allowed");
			expect(await as("dynamodb:GetItem", "arn:aws:dynamodb:us-east-1:111122223333:table/other")).not.toBe("Allowed");
		});

		it("reads log objects under the capture prefix, and no checkpoint", async () => {
			expect(await as("s3:GetObject", "arn:aws:s3:::ml-capture/datacapture/ep/v/2026/12/07/04/x.jsonl")).toBe(
				"Allowed",
			);
			expect(await as("s3:GetObject", "arn:aws:s3:::ml-capture/other/x.jsonl")).not.toBe("Allowed");
			expect(await as("s3:PutObject", "arn:aws:s3:::ml-capture/datacapture/x.jsonl")).not.toBe("Allowed");
			const checkpoints = resolver.bucketName(logicalId(stack.store.checkpointBucket));
			expect(await as("s3:GetObject", `arn:aws:s3:::${checkpoints}/jobs/a/model.onnx`)).not.toBe("Allowed");
		});

		it("reads Bedrock bodies under the large-data prefix only, and writes none", async () => {
			const body =
				"arn:aws:s3:::bedrock-large/invocations/AWSLogs/111122223333/BedrockModelInvocationLogs/data/out.json";
			expect(await as("s3:GetObject", body)).toBe("Allowed");
			expect(await as("s3:GetObject", "arn:aws:s3:::bedrock-large/other/out.json")).not.toBe("Allowed");
			expect(await as("s3:GetObject", "arn:aws:s3:::bedrock-large-2/invocations/out.json")).not.toBe("Allowed");
			expect(await as("s3:PutObject", body)).not.toBe("Allowed");
			expect(await as("s3:ListBucket", "arn:aws:s3:::bedrock-large")).not.toBe("Allowed");
		});
	});
});
