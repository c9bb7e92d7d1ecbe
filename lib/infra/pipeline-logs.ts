/**
 * The scan pipeline's logs: the KMS key that encrypts them and the log groups of its functions, state machine and
 * Batch job. Resources are added to the given scope under fixed ids (ScanPipeline's, so logical ids stay as they are).
 */
import type { RemovalPolicy } from "aws-cdk-lib";
import * as kms from "aws-cdk-lib/aws-kms";
import * as logs from "aws-cdk-lib/aws-logs";
import type { Construct } from "constructs";
import { logsKeyPolicy } from "./proactive-controls.js";
import { retainExceptOnCreate } from "./removal-policy.js";

export interface PipelineLogsProps {
	readonly retention: logs.RetentionDays;
	/** Of the key; the log groups get {@link retainExceptOnCreate} of it. */
	readonly removalPolicy: RemovalPolicy;
}

export class PipelineLogs {
	/** Encrypts every log group of the pipeline. */
	public readonly key: kms.Key;

	constructor(
		private readonly scope: Construct,
		private readonly props: PipelineLogsProps,
	) {
		this.key = new kms.Key(scope, "LogKey", {
			description: "ftguard: scan pipeline logs",
			enableKeyRotation: true,
			removalPolicy: props.removalPolicy,
		});
		logsKeyPolicy(this.key);
	}

	/** A log group encrypted with {@link key}; `logGroupName` fixed, or CloudFormation's. */
	public logGroup(id: string, logGroupName?: string): logs.LogGroup {
		return new logs.LogGroup(this.scope, id, {
			...(logGroupName ? { logGroupName } : {}),
			encryptionKey: this.key,
			retention: this.props.retention,
			removalPolicy: retainExceptOnCreate(this.props.removalPolicy),
		});
	}
}
