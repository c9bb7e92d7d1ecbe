import { RemovalPolicy } from "aws-cdk-lib";

/**
 * The removal policy for a resource that CloudFormation must not keep after a failed first deploy: RETAIN becomes
 * RETAIN_ON_UPDATE_OR_DELETE (DeletionPolicy `RetainExceptOnCreate`). CloudFormation keeps plain-`Retain` resources
 * when a create rolls back, so a resource with a fixed physical name (a named log group) would make every later
 * deploy fail with "already exists"; kept on update and delete, it is still never lost with its data.
 */
export function retainExceptOnCreate(policy: RemovalPolicy): RemovalPolicy {
	return policy === RemovalPolicy.RETAIN ? RemovalPolicy.RETAIN_ON_UPDATE_OR_DELETE : policy;
}
