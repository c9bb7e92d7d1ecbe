/**
 * The logical id of a construct's CloudFormation resource, as the acknowledgements of cdk-nag findings name it
 * (`<LogicalId.Arn>` in a finding id).
 */
import { Stack } from "aws-cdk-lib";
import type { IConstruct } from "constructs";

export function logicalIdOf(construct: IConstruct): string {
	const child = construct.node.defaultChild as { logicalId: string } | undefined;
	if (!child) throw new Error(`${construct.node.path} has no default child`);
	return Stack.of(construct).resolve(child.logicalId) as string;
}
