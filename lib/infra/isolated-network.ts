import { Duration, RemovalPolicy, Stack, Validations } from "aws-cdk-lib";
import * as ec2 from "aws-cdk-lib/aws-ec2";
import * as iam from "aws-cdk-lib/aws-iam";
import * as kms from "aws-cdk-lib/aws-kms";
import * as logs from "aws-cdk-lib/aws-logs";
import type * as s3 from "aws-cdk-lib/aws-s3";
import * as cr from "aws-cdk-lib/custom-resources";
import { Construct } from "constructs";
import { denyAnyPrincipal } from "./deny.js";
import { logsKeyPolicy, secureProviderLogs } from "./proactive-controls.js";
import { retainExceptOnCreate } from "./removal-policy.js";

/**
 * Interface endpoints that training and scanning compute needs in subnets with no route out: ECR (image pulls;
 * the layers themselves come through the S3 gateway), ECS (the agent on Batch-managed EC2 instances registers,
 * polls for tasks and reports telemetry), CloudWatch Logs (container logs and EMF metrics) and STS (web identity
 * and role assumption inside jobs).
 */
export const DEFAULT_INTERFACE_ENDPOINTS: Readonly<Record<string, ec2.InterfaceVpcEndpointAwsService>> = {
	EcrApi: ec2.InterfaceVpcEndpointAwsService.ECR,
	EcrDocker: ec2.InterfaceVpcEndpointAwsService.ECR_DOCKER,
	Ecs: ec2.InterfaceVpcEndpointAwsService.ECS,
	EcsAgent: ec2.InterfaceVpcEndpointAwsService.ECS_AGENT,
	EcsTelemetry: ec2.InterfaceVpcEndpointAwsService.ECS_TELEMETRY,
	Logs: ec2.InterfaceVpcEndpointAwsService.CLOUDWATCH_LOGS,
	Sts: ec2.InterfaceVpcEndpointAwsService.STS,
};

/** Construct id of the singleton Lambda behind every `AwsCustomResource` in a stack (fixed by aws-cdk-lib). */
const AWS_CUSTOM_RESOURCE_SINGLETON_ID = "AWS679f53fac002430cb0da5b7982bd2287";

export interface IsolatedNetworkProps {
	/** The buckets compute may reach through the S3 gateway endpoint (the endpoint policy names exactly these). */
	readonly buckets: readonly Pick<s3.IBucket, "bucketArn" | "arnForObjects">[];
	/**
	 * IPv4 range of the VPC.
	 * @default "10.64.0.0/16"
	 */
	readonly cidr?: string;
	/**
	 * Number of availability zones (one isolated subnet each).
	 * @default 2
	 */
	readonly maxAzs?: number;
	/**
	 * Prefix length of each isolated subnet; 16–28.
	 * @default 20
	 */
	readonly subnetCidrMask?: number;
	/**
	 * More interface endpoints, by construct id (for example `{ Batch: InterfaceVpcEndpointAwsService.BATCH }` when
	 * something inside the VPC calls the Batch API). They share the endpoint security group and the policy that
	 * limits every interface endpoint to this account's principals and resources ({@link limitToAccount}).
	 * @default none beyond {@link DEFAULT_INTERFACE_ENDPOINTS}
	 */
	readonly additionalInterfaceEndpoints?: Readonly<Record<string, ec2.InterfaceVpcEndpointAwsService>>;
	/**
	 * Id of the AWS-managed prefix list `com.amazonaws.<region>.s3`, the destination of the compute security
	 * group's S3 egress rule. Ids differ per region and account-independent lookups need credentials at synth,
	 * so without it a custom resource reads it at deploy time (`ec2:DescribeManagedPrefixLists`).
	 * @default looked up at deploy time
	 */
	readonly s3PrefixListId?: string;
	/**
	 * Key of the flow-log group.
	 * @default a new customer-managed key with rotation, usable by CloudWatch Logs in this account and region
	 */
	readonly logKey?: kms.IKey;
	/**
	 * Retention of the flow logs.
	 * @default logs.RetentionDays.ONE_YEAR
	 */
	readonly flowLogRetention?: logs.RetentionDays;
	/**
	 * What happens to the flow-log group and its key when the stack is deleted.
	 * @default RemovalPolicy.RETAIN
	 */
	readonly removalPolicy?: RemovalPolicy;
}

/**
 * A VPC with isolated subnets only: no internet gateway, no NAT, no public subnet. Compute reaches AWS through
 * VPC endpoints alone, and S3 only for ftguard's buckets (and ECR's layer bucket). All traffic is recorded in
 * encrypted flow logs.
 */
export class IsolatedNetwork extends Construct {
	public readonly vpc: ec2.Vpc;
	/** The isolated subnets: where training and scanning compute (Batch, VPC Lambdas) runs. */
	public readonly subnets: ec2.SelectedSubnets;
	/** Guards the interface endpoints: HTTPS in from compute security groups only. */
	public readonly endpointSecurityGroup: ec2.SecurityGroup;
	/** For compute: no ingress, egress only HTTPS to the endpoints and the S3 prefix list. */
	public readonly computeSecurityGroup: ec2.SecurityGroup;
	public readonly s3Endpoint: ec2.GatewayVpcEndpoint;
	/** Interface endpoints by construct id. */
	public readonly interfaceEndpoints: Readonly<Record<string, ec2.InterfaceVpcEndpoint>>;
	public readonly flowLogGroup: logs.LogGroup;
	public readonly flowLog: ec2.FlowLog;
	/** The S3 prefix list id (a deploy-time token unless given as a prop). */
	public readonly s3PrefixListId: string;

	private readonly endpoints: Record<string, ec2.InterfaceVpcEndpoint> = {};
	private readonly serviceNames = new Map<string, string>();

	constructor(scope: Construct, id: string, props: IsolatedNetworkProps) {
		super(scope, id);
		const maxAzs = props.maxAzs ?? 2;
		const cidrMask = props.subnetCidrMask ?? 20;
		if (!Number.isInteger(maxAzs) || maxAzs < 1 || maxAzs > 6) {
			throw new Error(`IsolatedNetwork: maxAzs must be an integer from 1 to 6 (got ${maxAzs})`);
		}
		if (!Number.isInteger(cidrMask) || cidrMask < 16 || cidrMask > 28) {
			throw new Error(`IsolatedNetwork: subnetCidrMask must be an integer from 16 to 28 (got ${cidrMask})`);
		}
		if (props.buckets.length === 0) {
			throw new Error("IsolatedNetwork: buckets must name at least one bucket for the S3 endpoint policy");
		}
		const stack = Stack.of(this);
		const removalPolicy = props.removalPolicy ?? RemovalPolicy.RETAIN;

		this.vpc = new ec2.Vpc(this, "Vpc", {
			ipAddresses: ec2.IpAddresses.cidr(props.cidr ?? "10.64.0.0/16"),
			maxAzs,
			natGateways: 0,
			createInternetGateway: false,
			restrictDefaultSecurityGroup: true,
			subnetConfiguration: [{ name: "isolated", subnetType: ec2.SubnetType.PRIVATE_ISOLATED, cidrMask }],
		});
		this.subnets = this.vpc.selectSubnets({ subnetType: ec2.SubnetType.PRIVATE_ISOLATED });

		const logKey =
			props.logKey ??
			new kms.Key(this, "FlowLogKey", {
				description: "ftguard: VPC flow logs",
				enableKeyRotation: true,
				removalPolicy,
			});
		if (!props.logKey) logsKeyPolicy(logKey);
		this.flowLogGroup = new logs.LogGroup(this, "FlowLogGroup", {
			encryptionKey: logKey,
			retention: props.flowLogRetention ?? logs.RetentionDays.ONE_YEAR,
			removalPolicy: retainExceptOnCreate(removalPolicy),
		});
		this.flowLog = new ec2.FlowLog(this, "FlowLog", {
			resourceType: ec2.FlowLogResourceType.fromVpc(vpcRef(this.vpc)),
			destination: ec2.FlowLogDestination.toCloudWatchLogs(this.flowLogGroup),
			trafficType: ec2.FlowLogTrafficType.ALL,
			maxAggregationInterval: ec2.FlowLogMaxAggregationInterval.ONE_MINUTE,
		});

		this.s3Endpoint = this.vpc.addGatewayEndpoint("S3", {
			service: ec2.GatewayVpcEndpointAwsService.S3,
			subnets: [{ subnetType: ec2.SubnetType.PRIVATE_ISOLATED }],
		});
		this.s3Endpoint.addToPolicy(
			new iam.PolicyStatement({
				sid: "FtguardBucketsOnly",
				principals: [new iam.AnyPrincipal()],
				actions: [
					"s3:GetObject*",
					"s3:PutObject*",
					"s3:ListBucket*",
					"s3:ListMultipartUploadParts",
					"s3:AbortMultipartUpload",
					"s3:GetBucketLocation",
				],
				resources: props.buckets.flatMap((b) => [b.bucketArn, b.arnForObjects("*")]),
			}),
		);
		this.s3Endpoint.addToPolicy(
			new iam.PolicyStatement({
				// ECR serves image layers from this AWS-owned bucket; without it no image can be pulled.
				sid: "EcrImageLayers",
				principals: [new iam.AnyPrincipal()],
				actions: ["s3:GetObject"],
				resources: [`arn:${stack.partition}:s3:::prod-${stack.region}-starport-layer-bucket/*`],
			}),
		);

		this.endpointSecurityGroup = new ec2.SecurityGroup(this, "EndpointSecurityGroup", {
			vpc: vpcRef(this.vpc),
			description: "ftguard interface endpoints: HTTPS from compute security groups only",
			allowAllOutbound: false,
		});
		this.interfaceEndpoints = this.endpoints;
		for (const [name, service] of Object.entries({
			...DEFAULT_INTERFACE_ENDPOINTS,
			...props.additionalInterfaceEndpoints,
		})) {
			this.interfaceEndpoint(name, service);
		}

		this.s3PrefixListId = props.s3PrefixListId ?? this.lookUpS3PrefixList(stack);
		// The VPC's restrict-default-SG handler (and the prefix-list lookup) log under the flow-log key and retention.
		secureProviderLogs(this, {
			key: logKey,
			retention: props.flowLogRetention ?? logs.RetentionDays.ONE_YEAR,
			removalPolicy,
		});
		this.computeSecurityGroup = this.createComputeSecurityGroup(
			"ComputeSecurityGroup",
			"ftguard compute: egress HTTPS to VPC endpoints only",
		);
	}

	/**
	 * The interface endpoint `name` for `service`, added (with the endpoint security group, private DNS and
	 * {@link limitToAccount}) unless the network has it already: what a construct that calls an AWS API from the
	 * isolated subnets asks for (the dataset gate: `Batch`, for its function's SubmitJob).
	 */
	public interfaceEndpoint(name: string, service: ec2.InterfaceVpcEndpointAwsService): ec2.InterfaceVpcEndpoint {
		const existing = this.endpoints[name];
		if (existing) {
			if (this.serviceNames.get(name) !== service.name) {
				throw new Error(`IsolatedNetwork: interface endpoint ${name} exists for another service`);
			}
			return existing;
		}
		const stack = Stack.of(this);
		const endpoint = this.vpc.addInterfaceEndpoint(name, {
			service,
			subnets: { subnetType: ec2.SubnetType.PRIVATE_ISOLATED },
			securityGroups: [this.endpointSecurityGroup],
			privateDnsEnabled: true,
			open: false,
		});
		limitToAccount(endpoint, stack.account);
		if (service === ec2.InterfaceVpcEndpointAwsService.STS) {
			// Web-identity requests are unsigned (no aws:PrincipalAccount): allow them into this account's roles only.
			endpoint.addToPolicy(
				new iam.PolicyStatement({
					sid: "WebIdentityIntoThisAccount",
					principals: [new iam.AnyPrincipal()],
					actions: ["sts:AssumeRoleWithWebIdentity"],
					resources: [`arn:${stack.partition}:iam::${stack.account}:role/*`],
				}),
			);
		}
		this.endpoints[name] = endpoint;
		this.serviceNames.set(name, service.name);
		return endpoint;
	}

	/**
	 * A further security group with the compute rules (no ingress; egress HTTPS to the endpoint security group and
	 * the S3 prefix list only), for example one per Batch compute environment or VPC Lambda.
	 */
	public createComputeSecurityGroup(id: string, description: string): ec2.SecurityGroup {
		const sg = new ec2.SecurityGroup(this, id, { vpc: vpcRef(this.vpc), description, allowAllOutbound: false });
		sg.addEgressRule(this.endpointSecurityGroup, ec2.Port.tcp(443), "HTTPS to the interface endpoints");
		sg.addEgressRule(ec2.Peer.prefixList(this.s3PrefixListId), ec2.Port.tcp(443), "HTTPS to S3 (gateway endpoint)");
		this.endpointSecurityGroup.addIngressRule(sg, ec2.Port.tcp(443), `HTTPS from ${id}`);
		return sg;
	}

	private lookUpS3PrefixList(stack: Stack): string {
		const lookup = new cr.AwsCustomResource(this, "S3PrefixListLookup", {
			onUpdate: {
				service: "EC2",
				action: "DescribeManagedPrefixLists",
				parameters: { Filters: [{ Name: "prefix-list-name", Values: [`com.amazonaws.${stack.region}.s3`] }] },
				physicalResourceId: cr.PhysicalResourceId.of("s3-prefix-list"),
				outputPaths: ["PrefixLists.0.PrefixListId"],
			},
			// DescribeManagedPrefixLists has no resource-level permissions.
			policy: cr.AwsCustomResourcePolicy.fromSdkCalls({ resources: cr.AwsCustomResourcePolicy.ANY_RESOURCE }),
			installLatestAwsSdk: false,
			timeout: Duration.minutes(2),
		});
		Validations.of(lookup).acknowledge({
			id: "AwsSolutions::AwsSolutions-IAM5[Resource::*]",
			reason:
				"ec2:DescribeManagedPrefixLists supports no resource-level permissions; the policy allows only that read-only action",
		});
		// The function behind every AwsCustomResource is a stack-level singleton with this fixed id.
		const provider = stack.node.tryFindChild(AWS_CUSTOM_RESOURCE_SINGLETON_ID);
		if (provider) {
			Validations.of(provider).acknowledge({
				id: "AwsSolutions::AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole]",
				reason:
					"CDK's AwsCustomResource provider function only writes its own CloudWatch logs; the managed policy grants exactly logs:CreateLogGroup/CreateLogStream/PutLogEvents",
			});
		}
		return lookup.getResponseField("PrefixLists.0.PrefixListId");
	}
}

/**
 * Replaces an interface endpoint's default full-access policy: only principals of `account`, and only resources of
 * `account` wherever the request names one (`aws:ResourceAccount`; actions without a resource, such as
 * ecr:GetAuthorizationToken or sts:GetCallerIdentity, may carry none and are not refused for that). So a job holding foreign credentials, or
 * assuming a foreign role (sts:AssumeRole's resource is the role), or writing to a foreign log group, cannot use
 * the endpoint. ECR's image layers come from an AWS-owned bucket through the S3 gateway endpoint, not these.
 */
export function limitToAccount(endpoint: ec2.InterfaceVpcEndpoint, account: string): void {
	endpoint.addToPolicy(
		new iam.PolicyStatement({
			sid: "PrincipalsOfThisAccount",
			principals: [new iam.AnyPrincipal()],
			actions: ["*"],
			resources: ["*"],
			conditions: { StringEquals: { "aws:PrincipalAccount": account } },
		}),
	);
	endpoint.addToPolicy(
		denyAnyPrincipal("ResourcesOfThisAccount", {
			actions: ["*"],
			resources: ["*"],
			// Null false first: a negated operator (with or without IfExists) is true when the key is absent.
			conditions: { Null: { "aws:ResourceAccount": "false" }, StringNotEquals: { "aws:ResourceAccount": account } },
		}),
	);
}

/**
 * Under `exactOptionalPropertyTypes` CDK's concrete `Vpc` is not assignable to its own `IVpc` (optional properties
 * such as `vpnGatewayId` are declared differently); it is one at runtime. The single cast lives here.
 */
export function vpcRef(vpc: ec2.Vpc): ec2.IVpc {
	return vpc as unknown as ec2.IVpc;
}
