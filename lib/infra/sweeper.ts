/**
 * The scheduled sweeper (lambdas/sweep.ts), as the store's sweeper role: lists the state machine's failed executions
 * and quarantines what they left SCANNING; emits `scans_stuck_in_scanning` on every run. Resources are added to the
 * given scope under the ids they have always had (ScanPipeline's), so logical ids do not change.
 */
import { ArnFormat, type Duration, Stack, Validations } from "aws-cdk-lib";
import * as events from "aws-cdk-lib/aws-events";
import * as targets from "aws-cdk-lib/aws-events-targets";
import * as iam from "aws-cdk-lib/aws-iam";
import type * as lambda from "aws-cdk-lib/aws-lambda";
import type * as sqs from "aws-cdk-lib/aws-sqs";
import type * as sfn from "aws-cdk-lib/aws-stepfunctions";
import type { Construct } from "constructs";
import { SWEEP } from "../core/pipeline/names.js";
import type { CheckpointStore } from "./checkpoint-store.js";
import { logicalIdOf } from "./logical-id.js";
import { deadLetterQueue, type ScanFunctionFactory } from "./scan-functions.js";
import { RESERVED_CONCURRENCY } from "./tags.js";

export interface SweeperProps {
	readonly store: CheckpointStore;
	readonly functions: ScanFunctionFactory;
	readonly stateMachine: sfn.StateMachine;
	/** The state machine's execution timeout: an execution older than this has ended. */
	readonly executionTimeout: Duration;
	/** How often it runs (checked by resolveScanPipelineProps); its lookback is SWEEP.lookbackIntervals of these. */
	readonly interval: Duration;
	readonly intervalMinutes: number;
}

export class Sweeper {
	public readonly function: lambda.Function;
	/** Runs {@link function} every interval. */
	public readonly schedule: events.Rule;
	/** Scheduled invocations of the sweeper that could not be delivered or failed. */
	public readonly deadLetterQueue: sqs.Queue;

	constructor(scope: Construct, props: SweeperProps) {
		this.deadLetterQueue = deadLetterQueue(scope, "SweepDeadLetterQueue");
		this.function = props.functions.create("sweep", {
			role: props.store.sweeperRole,
			reservedConcurrency: RESERVED_CONCURRENCY.sweep,
			environment: {
				FTGUARD_STATE_MACHINE_ARN: props.stateMachine.stateMachineArn,
				FTGUARD_MAX_EXECUTION_SECONDS: String(props.executionTimeout.toSeconds()),
			},
			deadLetterQueue: this.deadLetterQueue,
			// The next scheduled run is the retry (its lookback covers this one's window).
			retryAttempts: 0,
		});
		grantExecutionReads(scope, props.store.sweeperRole, props.stateMachine);
		this.schedule = new events.Rule(scope, "SweepSchedule", {
			description: "ftguard: quarantine objects left SCANNING by failed scans; report scans_stuck_in_scanning",
			schedule: events.Schedule.rate(props.interval),
		});
		this.schedule.addTarget(
			new targets.LambdaFunction(this.function as unknown as lambda.IFunction, {
				event: events.RuleTargetInput.fromObject({ lookbackMinutes: props.intervalMinutes * SWEEP.lookbackIntervals }),
				deadLetterQueue: this.deadLetterQueue as unknown as sqs.IQueue,
				retryAttempts: 2,
				maxEventAge: props.interval,
			}),
		);
	}
}

/**
 * The sweeper's Step Functions reads: ListExecutions on this state machine, DescribeExecution and
 * GetExecutionHistory on its executions. Its S3 tag access comes from the store (sweeperRole), its only writes
 * are limited by the bucket policy.
 */
function grantExecutionReads(scope: Construct, role: iam.Role, stateMachine: sfn.StateMachine): void {
	role.addToPrincipalPolicy(
		new iam.PolicyStatement({
			actions: ["states:ListExecutions"],
			resources: [stateMachine.stateMachineArn],
		}),
	);
	const executions = Stack.of(scope).formatArn({
		service: "states",
		resource: "execution",
		resourceName: `${stateMachine.stateMachineName}:*`,
		arnFormat: ArnFormat.COLON_RESOURCE_NAME,
	});
	role.addToPrincipalPolicy(
		new iam.PolicyStatement({
			actions: ["states:DescribeExecution", "states:GetExecutionHistory"],
			resources: [executions],
		}),
	);
	Validations.of(role).acknowledge({
		id: `AwsSolutions::AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:states:<AWS::Region>:<AWS::AccountId>:execution:<${logicalIdOf(stateMachine)}.Name>:*]`,
		reason:
			"The sweeper reads the failed executions of this one state machine (execution names are scan ids, not known at deploy time); Describe/GetExecutionHistory only",
	});
}
