/**
 * The base-model gate: an EventBridge rule on the base-model bucket's commit markers
 * (`<dir>/ftguard-base-model.json`, BASE_MODEL_MARKER_SUFFIX) invokes the base-model function (lambdas/base-model.ts;
 * failed deliveries and invocations to a dead-letter queue), which checks the model against the signed registry the
 * policy names and tags every version PROMOTABLE or QUARANTINED as the store's base-model gate role, the only tag
 * writer of that bucket (ScanPipeline's createRoles gives it ENI management and the policy object, as every VPC
 * function's role). It runs in the isolated subnets: base models and the registry are read through the S3
 * gateway endpoint (so the registry must be in one of ftguard's buckets, e.g. the base-model bucket).
 */
import { Duration } from "aws-cdk-lib";
import * as events from "aws-cdk-lib/aws-events";
import * as targets from "aws-cdk-lib/aws-events-targets";
import type * as lambda from "aws-cdk-lib/aws-lambda";
import type * as sqs from "aws-cdk-lib/aws-sqs";
import type { Construct } from "constructs";
import { BASE_MODEL_MARKER_SUFFIX } from "../core/pipeline/names.js";
import type { CheckpointStore } from "./checkpoint-store.js";
import { deadLetterQueue, type ScanFunctionFactory } from "./scan-functions.js";

export interface BaseModelGateProps {
	readonly store: CheckpointStore;
	readonly functions: ScanFunctionFactory;
	readonly reservedConcurrency: number;
}

export class BaseModelGate {
	/** Events and async invocations of the base-model function that could not be delivered. */
	public readonly deadLetterQueue: sqs.Queue;
	public readonly function: lambda.Function;
	/** Base-model marker uploads → the base-model function. */
	public readonly rule: events.Rule;

	constructor(scope: Construct, props: BaseModelGateProps) {
		const role = props.store.baseModelGateRole;
		this.deadLetterQueue = deadLetterQueue(scope, "BaseModelDeadLetterQueue");
		this.function = props.functions.create("base-model", {
			role,
			reservedConcurrency: props.reservedConcurrency,
			deadLetterQueue: this.deadLetterQueue,
			retryAttempts: 2,
		});
		this.rule = new events.Rule(scope, "BaseModelMarkerRule", {
			description: "ftguard: a base-model commit marker was uploaded: check the model against the signed registry",
			eventPattern: {
				source: ["aws.s3"],
				detailType: ["Object Created"],
				detail: {
					bucket: { name: [props.store.baseModelBucket.bucketName] },
					object: { key: [{ suffix: BASE_MODEL_MARKER_SUFFIX }] },
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
