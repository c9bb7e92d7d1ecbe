import { Duration } from "aws-cdk-lib";
import { Match, Template } from "aws-cdk-lib/assertions";
import * as sqs from "aws-cdk-lib/aws-sqs";
import * as sfn from "aws-cdk-lib/aws-stepfunctions";
import { beforeAll, describe, expect, it } from "vitest";
import { baseModelMetricDocument } from "../../lib/core/pipeline/base-model.js";
import { METRIC_NAMESPACE, MetricName, SWEEP } from "../../lib/core/pipeline/names.js";
import { Alarms } from "../../lib/infra/alarms.js";
import { logicalId, newStack } from "./helpers/stack.js";

let alarms: Alarms;
let template: Template;
let topicRef: { Ref: string };
let stateMachineAlarms: ReturnType<Alarms["addStateMachineAlarms"]>;

beforeAll(() => {
	const stack = newStack();
	alarms = new Alarms(stack, "Alarms", { emailSubscriptions: ["oncall@example.com"] });
	// What the pipeline construct will do with its state machine, DLQ and sweeper metric.
	const machine = new sfn.StateMachine(stack, "Machine", {
		definitionBody: sfn.DefinitionBody.fromChainable(new sfn.Pass(stack, "Pass")),
	});
	stateMachineAlarms = alarms.addStateMachineAlarms("Scan", machine);
	alarms.addDeadLetterQueueAlarm("Handlers", new sqs.Queue(stack, "Dlq", { enforceSSL: true }));
	alarms.addStuckScanAlarm();
	template = Template.fromStack(stack);
	topicRef = { Ref: logicalId(alarms.topic) };
});

const ftguardMetric = (name: string, statistic: string, period = 300) => ({
	Namespace: METRIC_NAMESPACE,
	MetricName: name,
	Statistic: statistic,
	Dimensions: [{ Name: "service", Value: "ftguard" }],
	Period: period,
});

describe("the alarm topic", () => {
	it("is encrypted with a rotated customer-managed key that CloudWatch may use (AWS's documented statement)", () => {
		const keyId = logicalId(alarms.topicKey as never);
		template.hasResourceProperties("AWS::SNS::Topic", { KmsMasterKeyId: { "Fn::GetAtt": [keyId, "Arn"] } });
		template.hasResourceProperties("AWS::KMS::Key", {
			EnableKeyRotation: true,
			KeyPolicy: {
				Statement: Match.arrayWith([
					Match.objectLike({
						Effect: "Allow",
						Principal: { Service: "cloudwatch.amazonaws.com" },
						Action: ["kms:Decrypt", "kms:GenerateDataKey*"],
						// AWS's documented form has no conditions (the topic policy keeps the confused-deputy ones)
						Condition: Match.absent(),
					}),
				]),
			},
		});
	});
	it("refuses publishing without TLS", () => {
		template.hasResourceProperties("AWS::SNS::TopicPolicy", {
			PolicyDocument: {
				Statement: Match.arrayWith([
					Match.objectLike({ Effect: "Deny", Condition: { Bool: { "aws:SecureTransport": "false" } } }),
				]),
			},
		});
	});
	it("has the on-call subscription", () => {
		template.hasResourceProperties("AWS::SNS::Subscription", { Protocol: "email", Endpoint: "oncall@example.com" });
	});
});

describe("the built-in alarms", () => {
	it("fire when any class's Neural Cleanse anomaly index is above 2.0 (Maximum over the period)", () => {
		template.hasResourceProperties("AWS::CloudWatch::Alarm", {
			...ftguardMetric(MetricName.NEURAL_CLEANSE_ANOMALY_INDEX, "Maximum"),
			ComparisonOperator: "GreaterThanThreshold",
			Threshold: 2,
			EvaluationPeriods: 1,
			AlarmActions: [topicRef],
			OKActions: [topicRef],
			AlarmDescription: Match.stringLikeRegexp("docs/operations.md#neural-cleanse-anomaly$"),
		});
	});
	it("fire on any base-model verification failure (result 0 among 1s)", () => {
		template.hasResourceProperties("AWS::CloudWatch::Alarm", {
			...ftguardMetric(MetricName.BASE_MODEL_VERIFICATION_RESULT, "Minimum"),
			ComparisonOperator: "LessThanThreshold",
			Threshold: 1,
			AlarmActions: [topicRef],
		});
	});
	it("BaseModelVerificationFailed watches what the base-model gate and `base-model check --metrics` emit, and fires on a 0", () => {
		const alarm = template.toJSON().Resources[logicalId(alarms.baseModelVerificationAlarm)].Properties as {
			Namespace: string;
			MetricName: string;
			Statistic: string;
			Dimensions: { Name: string; Value: string }[];
			Threshold: number;
			ComparisonOperator: string;
		};
		/** The points CloudWatch extracts from one EMF document, per dimension set (EMF specification). */
		const pointsOf = (doc: Record<string, unknown>) => {
			const directive = (
				doc._aws as { CloudWatchMetrics: { Namespace: string; Dimensions: string[][]; Metrics: { Name: string }[] }[] }
			).CloudWatchMetrics[0];
			if (!directive) throw new Error("no directive");
			return directive.Dimensions.flatMap((set) =>
				directive.Metrics.map((m) => ({
					namespace: directive.Namespace,
					name: m.Name,
					dimensions: set.map((d) => ({ Name: d, Value: doc[d] })).sort((a, b) => (a.Name < b.Name ? -1 : 1)),
					value: doc[m.Name] as number,
				})),
			);
		};
		/** What the alarm sees of a document: the points of the exact metric (namespace, name, dimension set) it watches. */
		const seen = (doc: Record<string, unknown>) =>
			pointsOf(doc).filter(
				(p) =>
					p.namespace === alarm.Namespace &&
					p.name === alarm.MetricName &&
					JSON.stringify(p.dimensions) ===
						JSON.stringify([...alarm.Dimensions].sort((a, b) => (a.Name < b.Name ? -1 : 1))),
			);
		// Minimum over the period, LessThanThreshold: the alarm state for a period holding these points
		const fires = (values: number[]) => {
			expect(alarm.Statistic).toBe("Minimum");
			expect(alarm.ComparisonOperator).toBe("LessThanThreshold");
			return Math.min(...values) < alarm.Threshold;
		};
		const pass = seen(baseModelMetricDocument("org/a@1", true) as Record<string, unknown>);
		const fail = seen(baseModelMetricDocument("org/b@1", false) as Record<string, unknown>);
		expect(pass.map((p) => p.value)).toEqual([1]);
		expect(fail.map((p) => p.value)).toEqual([0]);
		expect(fires(pass.map((p) => p.value))).toBe(false);
		expect(fires([...pass, ...fail, ...pass].map((p) => p.value))).toBe(true);
		// the per-model set is emitted too, for dashboards: {service, model_id, result}
		expect(pointsOf(baseModelMetricDocument("org/b@1", false) as Record<string, unknown>)[1]?.dimensions).toEqual([
			{ Name: "model_id", Value: "org/b@1" },
			{ Name: "result", Value: "fail" },
			{ Name: "service", Value: "ftguard" },
		]);
	});
	it("fire on any scan error", () => {
		template.hasResourceProperties("AWS::CloudWatch::Alarm", {
			...ftguardMetric(MetricName.SCAN_ERRORS_TOTAL, "Sum"),
			ComparisonOperator: "GreaterThanOrEqualToThreshold",
			Threshold: 1,
			AlarmActions: [topicRef],
		});
	});
	it("fire when a dataset scan finds poisoning", () => {
		template.hasResourceProperties("AWS::CloudWatch::Alarm", {
			...ftguardMetric(MetricName.FINETUNING_DATASET_POISONING_SCAN_RESULT, "Minimum"),
			ComparisonOperator: "LessThanThreshold",
			Threshold: 1,
		});
	});
});

describe("the alarms the pipeline adds", () => {
	it("fire on any failed or timed-out execution", () => {
		for (const metricName of ["ExecutionsFailed", "ExecutionsTimedOut"]) {
			template.hasResourceProperties("AWS::CloudWatch::Alarm", {
				Namespace: "AWS/States",
				MetricName: metricName,
				Statistic: "Sum",
				Threshold: 1,
				ComparisonOperator: "GreaterThanOrEqualToThreshold",
				Dimensions: [{ Name: "StateMachineArn", Value: { Ref: Match.stringLikeRegexp("^Machine") } }],
				AlarmActions: [topicRef],
			});
		}
		expect(stateMachineAlarms.failed).not.toBe(stateMachineAlarms.timedOut);
	});
	it("fire as soon as a dead-letter queue holds a message", () => {
		template.hasResourceProperties("AWS::CloudWatch::Alarm", {
			Namespace: "AWS/SQS",
			MetricName: "ApproximateNumberOfMessagesVisible",
			Statistic: "Maximum",
			Threshold: 1,
			ComparisonOperator: "GreaterThanOrEqualToThreshold",
			AlarmActions: [topicRef],
		});
	});
	it("fire when a sweep found (or could not check) stuck scans, or when the sweeper stops reporting", () => {
		// One period of two sweep intervals (15 min each): any run's value ≥ 1 alarms at once; a period with no
		// data point at all means two runs in a row did not report, and missing data breaches.
		expect(SWEEP.intervalMinutes * SWEEP.alarmPeriodIntervals).toBe(30);
		template.hasResourceProperties("AWS::CloudWatch::Alarm", {
			...ftguardMetric(MetricName.SCANS_STUCK_IN_SCANNING, "Maximum", 1800),
			Threshold: SWEEP.alarmThreshold,
			ComparisonOperator: "GreaterThanOrEqualToThreshold",
			EvaluationPeriods: 1,
			TreatMissingData: "breaching",
		});
	});
	it("follow the sweep interval they are given", () => {
		const s = newStack();
		new Alarms(s, "Alarms").addStuckScanAlarm("Stuck", Duration.minutes(5));
		Template.fromStack(s).hasResourceProperties("AWS::CloudWatch::Alarm", {
			MetricName: MetricName.SCANS_STUCK_IN_SCANNING,
			Period: 600,
			EvaluationPeriods: 1,
		});
	});
	it("are listed with the built-in ones, each with a runbook link", () => {
		expect(alarms.alarms).toHaveLength(8);
		template.resourceCountIs("AWS::CloudWatch::Alarm", 8);
		for (const alarm of Object.values(template.findResources("AWS::CloudWatch::Alarm"))) {
			expect((alarm as { Properties: { AlarmDescription: string } }).Properties.AlarmDescription).toMatch(
				/Runbook: docs\/operations\.md#[a-z-]+$/,
			);
		}
	});
});

describe("invalid combinations throw at synth", () => {
	it.each([0, -1, Number.NaN])("anomalyIndexThreshold %s", (anomalyIndexThreshold) => {
		expect(() => new Alarms(newStack(), "Alarms", { anomalyIndexThreshold })).toThrow(/anomalyIndexThreshold/);
	});
	it("a period that is not whole minutes", () => {
		expect(() => new Alarms(newStack(), "Alarms", { period: Duration.seconds(90) })).toThrow(/period/);
	});
	it("a sweep interval that is not whole minutes, or too long for an alarm period", () => {
		const a = new Alarms(newStack(), "Alarms");
		expect(() => a.addStuckScanAlarm("Stuck", Duration.seconds(90))).toThrow();
		expect(() => a.addStuckScanAlarm("Stuck2", Duration.hours(13))).toThrow(/too long/);
	});
});
