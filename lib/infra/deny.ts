/**
 * The shape every resource-policy guard of ftguard shares: a Deny, with its own statement id, for every principal,
 * narrowed by the actions, resources and conditions the caller spells out (one reviewed statement per call).
 */
import * as iam from "aws-cdk-lib/aws-iam";

export interface DenyScope {
	readonly actions?: readonly string[];
	readonly notActions?: readonly string[];
	readonly resources: readonly string[];
	readonly conditions?: Record<string, unknown>;
}

export function denyAnyPrincipal(sid: string, scope: DenyScope): iam.PolicyStatement {
	return new iam.PolicyStatement({
		sid,
		effect: iam.Effect.DENY,
		principals: [new iam.AnyPrincipal()],
		...(scope.actions ? { actions: [...scope.actions] } : {}),
		...(scope.notActions ? { notActions: [...scope.notActions] } : {}),
		resources: [...scope.resources],
		...(scope.conditions ? { conditions: scope.conditions } : {}),
	});
}
