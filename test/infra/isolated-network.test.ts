import { Template } from "aws-cdk-lib/assertions";
import * as ec2 from "aws-cdk-lib/aws-ec2";
import { beforeAll, describe, expect, it } from "vitest";
import { CheckpointStore } from "../../lib/infra/checkpoint-store.js";
import { IsolatedNetwork } from "../../lib/infra/isolated-network.js";
import type { FtguardStack } from "../../lib/infra/stack.js";
import { logicalId, newStack, sharedFtguard } from "./helpers/stack.js";

let stack: FtguardStack;
let template: Template;

beforeAll(() => {
	({ stack, template } = sharedFtguard());
});

type Resource = { Type: string; Properties: Record<string, unknown> };
const resources = (type: string): Resource[] => Object.values(template.findResources(type)) as Resource[];
const arn = (id: string) => ({ "Fn::GetAtt": [id, "Arn"] });
/** An array with exactly these members in any order (CDK sorts policy resources). */
const sameMembers = (items: unknown[]) =>
	expect.toSatisfy(
		(actual: unknown) =>
			Array.isArray(actual) && actual.length === items.length && expect.arrayContaining(items).asymmetricMatch(actual),
	);
const serviceName = (suffix: string) => ({ "Fn::Join": ["", ["com.amazonaws.", { Ref: "AWS::Region" }, suffix]] });

describe("the VPC", () => {
	it("has no internet gateway, no NAT, no egress-only gateway, no elastic IP", () => {
		for (const type of [
			"AWS::EC2::InternetGateway",
			"AWS::EC2::VPCGatewayAttachment",
			"AWS::EC2::NatGateway",
			"AWS::EC2::EgressOnlyInternetGateway",
			"AWS::EC2::EIP",
			"AWS::EC2::TransitGatewayAttachment",
			"AWS::EC2::VPNGateway",
		]) {
			template.resourceCountIs(type, 0);
		}
	});
	it("has isolated subnets only: none maps public IPs, and no route leaves the VPC", () => {
		const subnets = resources("AWS::EC2::Subnet");
		expect(subnets).toHaveLength(2);
		for (const subnet of subnets) {
			expect(subnet.Properties.MapPublicIpOnLaunch).toBe(false);
			expect(subnet.Properties.Tags).toContainEqual({ Key: "aws-cdk:subnet-type", Value: "Isolated" });
		}
		template.resourceCountIs("AWS::EC2::Route", 0);
		expect(stack.network.vpc.publicSubnets).toHaveLength(0);
		expect(stack.network.vpc.privateSubnets).toHaveLength(0);
		expect(stack.network.subnets.subnets).toHaveLength(2);
	});
	it("strips the default security group of its rules", () => {
		template.resourceCountIs("Custom::VpcRestrictDefaultSG", 1);
	});
	it("records ALL traffic in flow logs to a KMS-encrypted log group", () => {
		const logGroup = logicalId(stack.network.flowLogGroup);
		template.hasResourceProperties("AWS::EC2::FlowLog", {
			ResourceType: "VPC",
			ResourceId: { Ref: logicalId(stack.network.vpc) },
			TrafficType: "ALL",
			LogDestinationType: "cloud-watch-logs",
			LogGroupName: { Ref: logGroup },
		});
		const group = template.toJSON().Resources[logGroup];
		expect(group.Properties.KmsKeyId).toEqual({ "Fn::GetAtt": [expect.stringMatching(/FlowLogKey/), "Arn"] });
		expect(group.Properties.RetentionInDays).toBe(365);
		template.hasResourceProperties("AWS::KMS::Key", {
			Description: "ftguard: VPC flow logs",
			EnableKeyRotation: true,
		});
	});
});

describe("the VPC endpoints", () => {
	it("include the S3 gateway and the interface endpoints for ECR, ECS, Logs, STS, Batch (the dataset gate's) and KMS (provenance signing)", () => {
		template.hasResourceProperties("AWS::EC2::VPCEndpoint", {
			VpcEndpointType: "Gateway",
			ServiceName: serviceName(".s3"),
		});
		for (const suffix of [
			".ecr.api",
			".ecr.dkr",
			".ecs",
			".ecs-agent",
			".ecs-telemetry",
			".logs",
			".sts",
			".batch",
			".kms",
		]) {
			template.hasResourceProperties("AWS::EC2::VPCEndpoint", {
				VpcEndpointType: "Interface",
				ServiceName: serviceName(suffix),
				PrivateDnsEnabled: true,
				SecurityGroupIds: [{ "Fn::GetAtt": [logicalId(stack.network.endpointSecurityGroup), "GroupId"] }],
			});
		}
		template.resourceCountIs("AWS::EC2::VPCEndpoint", 10);
	});
	it("limit S3 to ftguard's four data buckets and ECR's layer bucket", () => {
		const [gateway] = resources("AWS::EC2::VPCEndpoint").filter((r) => r.Properties.VpcEndpointType === "Gateway");
		const { store } = stack;
		const data = [store.checkpointBucket, store.baseModelBucket, store.datasetBucket, store.reportBucket].map(
			logicalId,
		);
		expect(gateway?.Properties.PolicyDocument).toEqual({
			Version: "2012-10-17",
			Statement: [
				{
					Sid: "FtguardBucketsOnly",
					Effect: "Allow",
					Principal: { AWS: "*" },
					Action: [
						"s3:AbortMultipartUpload",
						"s3:GetBucketLocation",
						"s3:GetObject*",
						"s3:ListBucket*",
						"s3:ListMultipartUploadParts",
						"s3:PutObject*",
					],
					Resource: sameMembers(data.flatMap((id) => [arn(id), { "Fn::Join": ["", [arn(id), "/*"]] }])),
				},
				{
					Sid: "EcrImageLayers",
					Effect: "Allow",
					Principal: { AWS: "*" },
					Action: "s3:GetObject",
					Resource: {
						"Fn::Join": [
							"",
							["arn:", { Ref: "AWS::Partition" }, ":s3:::prod-", { Ref: "AWS::Region" }, "-starport-layer-bucket/*"],
						],
					},
				},
			],
		});
		const accessLog = logicalId(store.accessLogBucket);
		expect(JSON.stringify(gateway?.Properties.PolicyDocument)).not.toContain(accessLog);
	});
});

describe("the security groups", () => {
	it("compute has no ingress and egress only HTTPS to the endpoint group and the S3 prefix list", () => {
		const compute = logicalId(stack.network.computeSecurityGroup);
		const endpoints = logicalId(stack.network.endpointSecurityGroup);
		const props = template.toJSON().Resources[compute].Properties;
		expect(props.SecurityGroupIngress).toBeUndefined();
		expect(props.SecurityGroupEgress).toBeUndefined();
		const egress = resources("AWS::EC2::SecurityGroupEgress").filter(
			(r) => JSON.stringify(r.Properties.GroupId) === JSON.stringify({ "Fn::GetAtt": [compute, "GroupId"] }),
		);
		expect(egress.map((r) => r.Properties)).toEqual([
			expect.objectContaining({
				IpProtocol: "tcp",
				FromPort: 443,
				ToPort: 443,
				DestinationSecurityGroupId: { "Fn::GetAtt": [endpoints, "GroupId"] },
			}),
			expect.objectContaining({
				IpProtocol: "tcp",
				FromPort: 443,
				ToPort: 443,
				DestinationPrefixListId: {
					"Fn::GetAtt": [expect.stringMatching(/S3PrefixListLookup/), "PrefixLists.0.PrefixListId"],
				},
			}),
		]);
		const ingressToCompute = resources("AWS::EC2::SecurityGroupIngress").filter(
			(r) => JSON.stringify(r.Properties.GroupId) === JSON.stringify({ "Fn::GetAtt": [compute, "GroupId"] }),
		);
		expect(ingressToCompute).toHaveLength(0);
	});
	it("the endpoints accept HTTPS from compute only and send nothing", () => {
		const compute = logicalId(stack.network.computeSecurityGroup);
		const endpoints = logicalId(stack.network.endpointSecurityGroup);
		const ingress = resources("AWS::EC2::SecurityGroupIngress").filter(
			(r) => JSON.stringify(r.Properties.GroupId) === JSON.stringify({ "Fn::GetAtt": [endpoints, "GroupId"] }),
		);
		expect(ingress.map((r) => r.Properties)).toEqual([
			expect.objectContaining({
				IpProtocol: "tcp",
				FromPort: 443,
				ToPort: 443,
				SourceSecurityGroupId: { "Fn::GetAtt": [compute, "GroupId"] },
			}),
		]);
		const props = template.toJSON().Resources[endpoints].Properties;
		expect(props.SecurityGroupIngress).toBeUndefined();
		expect(props.SecurityGroupEgress).toEqual([
			expect.objectContaining({ CidrIp: "255.255.255.255/32", Description: "Disallow all traffic" }),
		]);
	});
	it("no security group anywhere allows 0.0.0.0/0 or ::/0", () => {
		const text = JSON.stringify([
			...resources("AWS::EC2::SecurityGroup"),
			...resources("AWS::EC2::SecurityGroupEgress"),
			...resources("AWS::EC2::SecurityGroupIngress"),
		]);
		expect(text).not.toContain("0.0.0.0/0");
		expect(text).not.toContain("::/0");
	});
});

describe("when the S3 prefix list id is given", () => {
	it("uses it and creates no lookup custom resource", () => {
		const s = newStack();
		const store = new CheckpointStore(s, "Store");
		const network = new IsolatedNetwork(s, "Network", { buckets: store.dataBuckets, s3PrefixListId: "pl-63a5400a" });
		const t = Template.fromStack(s);
		t.resourceCountIs("Custom::AWS", 0);
		t.hasResourceProperties("AWS::EC2::SecurityGroupEgress", {
			GroupId: { "Fn::GetAtt": [logicalId(network.computeSecurityGroup), "GroupId"] },
			DestinationPrefixListId: "pl-63a5400a",
			FromPort: 443,
		});
	});
	it("a further compute group for the pipeline gets the same rules", () => {
		const s = newStack();
		const store = new CheckpointStore(s, "Store");
		const network = new IsolatedNetwork(s, "Network", { buckets: store.dataBuckets, s3PrefixListId: "pl-63a5400a" });
		const batch = network.createComputeSecurityGroup("BatchSecurityGroup", "batch");
		const t = Template.fromStack(s);
		t.resourcePropertiesCountIs(
			"AWS::EC2::SecurityGroupEgress",
			{ GroupId: { "Fn::GetAtt": [logicalId(batch), "GroupId"] } },
			2,
		);
		t.hasResourceProperties("AWS::EC2::SecurityGroupIngress", {
			GroupId: { "Fn::GetAtt": [logicalId(network.endpointSecurityGroup), "GroupId"] },
			SourceSecurityGroupId: { "Fn::GetAtt": [logicalId(batch), "GroupId"] },
		});
	});
	it("additional interface endpoints join the endpoint security group", () => {
		const s = newStack();
		const store = new CheckpointStore(s, "Store");
		new IsolatedNetwork(s, "Network", {
			buckets: store.dataBuckets,
			additionalInterfaceEndpoints: { Batch: ec2.InterfaceVpcEndpointAwsService.BATCH },
		});
		Template.fromStack(s).hasResourceProperties("AWS::EC2::VPCEndpoint", { ServiceName: serviceName(".batch") });
	});
});

describe("invalid combinations throw at synth", () => {
	it("no bucket for the endpoint policy", () => {
		expect(() => new IsolatedNetwork(newStack(), "Network", { buckets: [] })).toThrow(/at least one bucket/);
	});
	it.each([0, 7, 1.5])("maxAzs %s", (maxAzs) => {
		const s = newStack();
		const store = new CheckpointStore(s, "Store");
		expect(() => new IsolatedNetwork(s, "Network", { buckets: store.dataBuckets, maxAzs })).toThrow(/maxAzs/);
	});
	it("a subnet mask outside 16–28", () => {
		const s = newStack();
		const store = new CheckpointStore(s, "Store");
		expect(() => new IsolatedNetwork(s, "Network", { buckets: store.dataBuckets, subnetCidrMask: 30 })).toThrow(
			/subnetCidrMask/,
		);
	});
});
