import { runSimulation, type Simulation } from "@cloud-copilot/iam-simulate";

export const ACCOUNT = "111122223333";
export const REGION = "us-east-1";

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
interface CfnResource {
	Type: string;
	Properties?: Record<string, Json>;
}
export interface CfnTemplate {
	Resources: Record<string, CfnResource>;
}
export interface PolicyDocument {
	Version?: string;
	Statement: Record<string, Json>[];
}

/**
 * Resolves the intrinsics CDK writes in policies (Ref, Fn::GetAtt, Fn::Join, pseudo parameters) to the concrete
 * names and ARNs the resources would have in account {@link ACCOUNT}, region {@link REGION}: a bucket is named
 * `ftguard-<logical id, lower case>`, a role `<logical id>`, a key has id `<logical id>`.
 */
export class TemplateResolver {
	constructor(private readonly template: CfnTemplate) {}

	bucketName(logicalId: string): string {
		return `ftguard-${logicalId.toLowerCase()}`;
	}
	roleArn(logicalId: string): string {
		return `arn:aws:iam::${ACCOUNT}:role/${logicalId}`;
	}
	/** The ARN of a session of the role, as the request principal. */
	sessionArn(logicalId: string, session = "session"): string {
		return `arn:aws:sts::${ACCOUNT}:assumed-role/${logicalId}/${session}`;
	}

	resolve(value: Json): Json {
		if (Array.isArray(value)) return value.map((v) => this.resolve(v));
		if (value === null || typeof value !== "object") return value;
		const keys = Object.keys(value);
		if (keys.length === 1) {
			const [key] = keys as [string];
			const arg = value[key] as Json;
			if (key === "Ref") return this.ref(arg as string);
			if (key === "Fn::GetAtt") {
				const [id, attr] = arg as [string, string];
				return this.getAtt(id, attr);
			}
			if (key === "Fn::Join") {
				const [sep, parts] = arg as [string, Json[]];
				return parts.map((p) => this.resolve(p) as string).join(sep);
			}
			if (key.startsWith("Fn::")) throw new Error(`unsupported intrinsic ${key}`);
		}
		return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, this.resolve(v)]));
	}

	private ref(id: string): string {
		switch (id) {
			case "AWS::Partition":
				return "aws";
			case "AWS::Region":
				return REGION;
			case "AWS::AccountId":
				return ACCOUNT;
			case "AWS::URLSuffix":
				return "amazonaws.com";
		}
		const type = this.typeOf(id);
		if (type === "AWS::S3::Bucket") return this.bucketName(id);
		if (type === "AWS::IAM::Role") return id;
		if (type === "AWS::KMS::Key") return id;
		if (type === "AWS::EC2::VPC") return `vpc-${id.toLowerCase().slice(0, 12)}`;
		if (type === "AWS::EC2::VPCEndpoint") return `vpce-${id.toLowerCase().slice(0, 12)}`;
		if (type === "AWS::SNS::Topic") return `arn:aws:sns:${REGION}:${ACCOUNT}:${id}`;
		if (type === "AWS::StepFunctions::StateMachine") return `arn:aws:states:${REGION}:${ACCOUNT}:stateMachine:${id}`;
		// a job definition's Ref is its ARN with the revision (a first deploy: 1)
		if (type === "AWS::Batch::JobDefinition") return `arn:aws:batch:${REGION}:${ACCOUNT}:job-definition/${id}:1`;
		throw new Error(`unsupported Ref to ${type}`);
	}

	private getAtt(id: string, attr: string): string {
		const type = this.typeOf(id);
		if (type === "AWS::S3::Bucket" && attr === "Arn") return `arn:aws:s3:::${this.bucketName(id)}`;
		if (type === "AWS::IAM::Role" && attr === "Arn") return this.roleArn(id);
		if (type === "AWS::KMS::Key" && attr === "Arn") return `arn:aws:kms:${REGION}:${ACCOUNT}:key/${id}`;
		if (type === "AWS::SQS::Queue" && attr === "Arn") return `arn:aws:sqs:${REGION}:${ACCOUNT}:${id}`;
		if (type === "AWS::Events::Rule" && attr === "Arn") return `arn:aws:events:${REGION}:${ACCOUNT}:rule/${id}`;
		if (type === "AWS::Lambda::Function" && attr === "Arn") return `arn:aws:lambda:${REGION}:${ACCOUNT}:function:${id}`;
		if (type === "AWS::Batch::JobQueue" && attr === "JobQueueArn") {
			return `arn:aws:batch:${REGION}:${ACCOUNT}:job-queue/${id}`;
		}
		if (type === "AWS::StepFunctions::StateMachine" && attr === "Name") return id;
		if (type === "AWS::DynamoDB::Table" && attr === "Arn") return `arn:aws:dynamodb:${REGION}:${ACCOUNT}:table/${id}`;
		throw new Error(`unsupported Fn::GetAtt ${type}.${attr}`);
	}

	private typeOf(id: string): string {
		const resource = this.template.Resources[id];
		if (!resource) throw new Error(`no resource ${id}`);
		return resource.Type;
	}

	/** The resolved bucket policy of the bucket with this logical id. */
	bucketPolicy(bucketId: string): PolicyDocument {
		for (const resource of Object.values(this.template.Resources)) {
			if (resource.Type !== "AWS::S3::BucketPolicy") continue;
			const bucket = resource.Properties?.Bucket as { Ref?: string } | undefined;
			if (bucket?.Ref === bucketId) return this.resolve(resource.Properties?.PolicyDocument ?? null) as never;
		}
		throw new Error(`no bucket policy for ${bucketId}`);
	}

	/** The resolved trust policy of the role with this logical id. */
	trustPolicy(roleId: string): PolicyDocument {
		const role = this.template.Resources[roleId];
		return this.resolve(role?.Properties?.AssumeRolePolicyDocument ?? null) as never;
	}

	/** The resolved permissions boundary of the role with this logical id, if it has one. */
	permissionsBoundary(roleId: string): { name: string; policy: PolicyDocument }[] {
		const ref = this.template.Resources[roleId]?.Properties?.PermissionsBoundary as { Ref?: string } | undefined;
		if (!ref) return [];
		if (!ref.Ref) throw new Error(`${roleId}: unsupported PermissionsBoundary ${JSON.stringify(ref)}`);
		const policy = this.template.Resources[ref.Ref];
		if (policy?.Type !== "AWS::IAM::ManagedPolicy") throw new Error(`${ref.Ref} is not a managed policy`);
		return [{ name: ref.Ref, policy: this.resolve(policy.Properties?.PolicyDocument ?? null) as never }];
	}

	/** Every identity policy attached to the role with this logical id (AWS::IAM::Policy and inline). */
	identityPolicies(roleId: string): { name: string; policy: PolicyDocument }[] {
		const policies: { name: string; policy: PolicyDocument }[] = [];
		for (const [id, resource] of Object.entries(this.template.Resources)) {
			if (resource.Type !== "AWS::IAM::Policy") continue;
			const roles = (resource.Properties?.Roles ?? []) as { Ref?: string }[];
			if (roles.some((r) => r.Ref === roleId)) {
				policies.push({ name: id, policy: this.resolve(resource.Properties?.PolicyDocument ?? null) as never });
			}
		}
		const role = this.template.Resources[roleId];
		if (role?.Properties?.ManagedPolicyArns) throw new Error(`${roleId} has managed policies; not modelled`);
		for (const inline of (role?.Properties?.Policies ?? []) as { PolicyName: string; PolicyDocument: Json }[]) {
			policies.push({ name: inline.PolicyName, policy: this.resolve(inline.PolicyDocument) as never });
		}
		return policies;
	}
}

export interface Request {
	/** Role ARN of the caller (its session ARN is the principal; the role ARN is aws:PrincipalArn). */
	readonly roleArn: string;
	readonly identityPolicies: { name: string; policy: unknown }[];
	readonly action: string;
	readonly resource: string;
	readonly resourcePolicy?: unknown;
	readonly vpcEndpointPolicy?: unknown;
	/** Permissions boundary of the caller's role, if any. */
	readonly permissionBoundaries?: { name: string; policy: unknown }[];
	readonly context?: Record<string, string | string[]>;
}

export type Decision = "Allowed" | "ExplicitlyDenied" | "ImplicitlyDenied";

/** Runs one same-account request through iam-simulate (strict mode); validation errors throw. */
export async function decide(request: Request): Promise<Decision> {
	const roleName = request.roleArn.split("/").at(-1) ?? "role";
	const simulation: Simulation = {
		request: {
			principal: `arn:aws:sts::${ACCOUNT}:assumed-role/${roleName}/session`,
			action: request.action,
			resource: { resource: request.resource, accountId: ACCOUNT },
			contextVariables: {
				"aws:PrincipalArn": request.roleArn,
				"aws:PrincipalAccount": ACCOUNT,
				"aws:SecureTransport": "true",
				...request.context,
			},
		},
		identityPolicies: request.identityPolicies,
		serviceControlPolicies: [],
		resourceControlPolicies: [],
		...(request.resourcePolicy ? { resourcePolicy: request.resourcePolicy } : {}),
		...(request.permissionBoundaries?.length ? { permissionBoundaryPolicies: request.permissionBoundaries } : {}),
		...(request.vpcEndpointPolicy
			? { vpcEndpointPolicies: [{ name: "s3-endpoint", policy: request.vpcEndpointPolicy }] }
			: {}),
	};
	const result = await runSimulation(simulation, { simulationMode: "Strict" });
	if (result.resultType === "error") {
		throw new Error(`simulation invalid: ${JSON.stringify(result.errors)}`);
	}
	return result.overallResult as Decision;
}

/** The resolved policy of the S3 gateway endpoint (the only AWS::EC2::VPCEndpoint with a policy document). */
export function s3EndpointPolicy(resolver: TemplateResolver, template: CfnTemplate): PolicyDocument {
	for (const resource of Object.values(template.Resources)) {
		if (resource.Type === "AWS::EC2::VPCEndpoint" && resource.Properties?.VpcEndpointType === "Gateway") {
			const policy = resolver.resolve(resource.Properties.PolicyDocument ?? null) as unknown as PolicyDocument;
			// CDK writes AnyPrincipal as {"AWS":"*"}; AWS treats it as "*", iam-simulate accepts only "*" here.
			for (const statement of policy.Statement) {
				if (JSON.stringify(statement.Principal) === '{"AWS":"*"}') statement.Principal = "*";
			}
			return policy;
		}
	}
	throw new Error("no gateway endpoint");
}
