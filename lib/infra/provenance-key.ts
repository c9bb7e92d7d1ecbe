import { RemovalPolicy } from "aws-cdk-lib";
import * as ec2 from "aws-cdk-lib/aws-ec2";
import * as iam from "aws-cdk-lib/aws-iam";
import * as kms from "aws-cdk-lib/aws-kms";
import type * as lambda from "aws-cdk-lib/aws-lambda";
import { Construct } from "constructs";
import { denyAnyPrincipal } from "./deny.js";
import type { IsolatedNetwork } from "./isolated-network.js";
import { denyGrantsNotForAwsResources } from "./proactive-controls.js";

/** The record function's environment variable naming the key (lib/aws/kms-signer.ts reads it). */
export const PROVENANCE_KMS_KEY_ENV = "FTGUARD_PROVENANCE_KMS_KEY";

export interface ProvenanceKeyProps {
	/** The role the record function runs as: the only principal whose kms:Sign the key policy does not deny. */
	readonly signerRole: iam.Role;
	/** The record function runs in its isolated subnets: KMS is reached through an interface endpoint there. */
	readonly network: IsolatedNetwork;
	/** @default RemovalPolicy.RETAIN: a deleted key would make every provenance record unverifiable */
	readonly removalPolicy?: RemovalPolicy;
}

/**
 * The key that signs every verdict's provenance record (docs/provenance.md): ECC_NIST_P256, SIGN_VERIFY, its private
 * half never leaving KMS. Who may sign is decided in two places, both required:
 *
 * - the key policy denies kms:Sign to every principal but the signer role (the store's verdict role), whatever
 *   their IAM policies allow, and lets the account's IAM decide the rest (administration, GetPublicKey for anyone
 *   in the account who verifies — no kms:Sign, kms:Decrypt or the like is granted by the key policy itself);
 * - the signer role's own policy ({@link allowSigningFrom}) allows kms:Sign only from the record function's code
 *   (`lambda:SourceFunctionArn`: a condition key of identity policies only), so mark, which runs as the same
 *   role, cannot sign.
 */
export class ProvenanceKey extends Construct {
	public readonly key: kms.Key;

	constructor(scope: Construct, id: string, props: ProvenanceKeyProps) {
		super(scope, id);
		const account = new iam.AccountRootPrincipal();
		this.key = new kms.Key(this, "Key", {
			description: "ftguard: signs the provenance record of every scan verdict",
			keySpec: kms.KeySpec.ECC_NIST_P256,
			keyUsage: kms.KeyUsage.SIGN_VERIFY,
			removalPolicy: props.removalPolicy ?? RemovalPolicy.RETAIN,
			policy: new iam.PolicyDocument({
				statements: [
					new iam.PolicyStatement({
						sid: "KeyAdministrationByIam",
						principals: [account],
						actions: [
							"kms:Create*",
							"kms:Describe*",
							"kms:Enable*",
							"kms:List*",
							"kms:Put*",
							"kms:Update*",
							"kms:Revoke*",
							"kms:Disable*",
							"kms:Get*",
							"kms:Delete*",
							"kms:TagResource",
							"kms:UntagResource",
							"kms:ScheduleKeyDeletion",
							"kms:CancelKeyDeletion",
						],
						resources: ["*"],
					}),
					new iam.PolicyStatement({
						sid: "VerifiersOfThisAccount",
						principals: [account],
						actions: ["kms:GetPublicKey", "kms:DescribeKey", "kms:Verify"],
						resources: ["*"],
					}),
					new iam.PolicyStatement({
						sid: "SignThroughIam",
						principals: [account],
						actions: ["kms:Sign"],
						resources: ["*"],
					}),
					denyAnyPrincipal("OnlyTheRecordRoleSigns", {
						actions: ["kms:Sign"],
						resources: ["*"],
						conditions: { ArnNotEquals: { "aws:PrincipalArn": props.signerRole.roleArn } },
					}),
				],
			}),
		});
		denyGrantsNotForAwsResources(this.key);
		// The record function runs in the isolated subnets: KMS Sign / GetPublicKey through an interface endpoint.
		props.network.interfaceEndpoint("Kms", ec2.InterfaceVpcEndpointAwsService.KMS);
	}

	/**
	 * The signer role may sign with this key from `fn`'s code only. A policy of its own, not the role's default one:
	 * the function depends on its role's default policy, and this statement names the function.
	 */
	public allowSigningFrom(role: iam.Role, fn: lambda.IFunction): iam.Policy {
		return new iam.Policy(this, "SignPolicy", {
			roles: [role as unknown as iam.IRole],
			statements: [
				new iam.PolicyStatement({
					sid: "SignProvenanceFromRecordFunction",
					actions: ["kms:Sign"],
					resources: [this.key.keyArn],
					conditions: {
						ArnEquals: { "lambda:SourceFunctionArn": fn.functionArn },
						StringEquals: { "kms:MessageType": "DIGEST", "kms:SigningAlgorithm": "ECDSA_SHA_256" },
					},
				}),
				new iam.PolicyStatement({
					sid: "ReadProvenancePublicKey",
					actions: ["kms:GetPublicKey"],
					resources: [this.key.keyArn],
				}),
			],
		});
	}
}
