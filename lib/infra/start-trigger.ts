/**
 * How a scan starts: an EventBridge rule on the checkpoint bucket's commit markers invokes the start function (its
 * failed deliveries and invocations to a dead-letter queue), which starts an execution of the state machine.
 * Resources are added to the given scope under the ids they have always had (ScanPipeline's), so logical ids do not
 * change.
 */
import { Duration } from "aws-cdk-lib";
import * as events from "aws-cdk-lib/aws-events";
import * as targets from "aws-cdk-lib/aws-events-targets";
import type * as iam from "aws-cdk-lib/aws-iam";
import type * as lambda from "aws-cdk-lib/aws-lambda";
import type * as sqs from "aws-cdk-lib/aws-sqs";
import type * as sfn from "aws-cdk-lib/aws-stepfunctions";
import type { Construct } from "constructs";
import { MARKER_SUFFIXES } from "../core/pipeline/names.js";
import type { CheckpointStore } from "./checkpoint-store.js";
import { deadLetterQueue, type ScanFunctionFactory } from "./scan-functions.js";

export interface StartTriggerProps {
	readonly store: CheckpointStore;
	readonly functions: ScanFunctionFactory;
	/** The start function's role: it is granted StartExecution on {@link stateMachine} only. */
	readonly role: iam.Role;
	readonly reservedConcurrency: number;
	readonly stateMachine: sfn.StateMachine;
}

export class StartTrigger {
	/** Events and async invocations of the start function that could not be delivered. */
	public readonly deadLetterQueue: sqs.Queue;
	public readonly function: lambda.Function;
	/** Commit-marker uploads → the start function. */
	public readonly rule: events.Rule;

	constructor(scope: Construct, props: StartTriggerProps) {
		this.deadLetterQueue = deadLetterQueue(scope, "StartDeadLetterQueue");
		this.function = props.functions.create("start", {
			role: props.role,
			reservedConcurrency: props.reservedConcurrency,
			environment: { FTGUARD_STATE_MACHINE_ARN: props.stateMachine.stateMachineArn },
			deadLetterQueue: this.deadLetterQueue,
			retryAttempts: 2,
		});
		props.stateMachine.grantStartExecution(props.role);
		this.rule = new events.Rule(scope, "CommitMarkerRule", {
			description: "ftguard: a commit marker or single-file artefact was uploaded: start its scan",
			eventPattern: {
				source: ["aws.s3"],
				detailType: ["Object Created"],
				detail: {
					bucket: { name: [props.store.checkpointBucket.bucketName] },
					object: {
						// The start handler's commit markers (lib/core/pipeline/artefact.ts resolveMarker).
						key: MARKER_SUFFIXES.map((suffix) => ({ suffix })),
					},
				},
			},
		});
		this.rule.addTarget(
			new targets.LambdaFunction(this.function as unknown as lambda.IFunction, {
				deadLetterQueue: this.deadLetterQueue as unknown as sqs.IQueue,
				retryAttempts: 8,
				maxEventAge: Duration.hours(6),
			}),
		);
	}
}
