import { beforeAll, describe, expect, it } from "vitest";
import { ACCOUNT, type CfnTemplate, decide, type PolicyDocument, REGION, TemplateResolver } from "./helpers/iam.js";
import { logicalId, sharedFtguard } from "./helpers/stack.js";

// The provenance key (lib/infra/provenance-key.ts): who may sign verdicts' provenance records, evaluated with
// iam-simulate over the synthesized key policy and role policies.

let template: CfnTemplate;
let resolver: TemplateResolver;
let keyArn: string;
let keyPolicy: PolicyDocument;
const roles = { verdict: "", scanner: "", decide: "", job: "", sweeper: "", breakGlass: "" };
const fnArn = (id: string) => `arn:aws:lambda:${REGION}:${ACCOUNT}:function:${id}`;
let recordFn = "";
let markFn = "";

beforeAll(() => {
	const { stack, template: t } = sharedFtguard();
	template = t.toJSON() as CfnTemplate;
	resolver = new TemplateResolver(template);
	const keyId = logicalId(stack.scanPipeline.provenanceKey.key);
	keyArn = `arn:aws:kms:${REGION}:${ACCOUNT}:key/${keyId}`;
	keyPolicy = resolver.resolve(template.Resources[keyId]?.Properties?.KeyPolicy ?? null) as never;
	// CDK writes AnyPrincipal as {"AWS":"*"}; iam-simulate accepts only "*" there
	for (const s of keyPolicy.Statement) if (JSON.stringify(s.Principal) === '{"AWS":"*"}') s.Principal = "*";
	const { store } = stack;
	roles.verdict = logicalId(store.verdictRole);
	roles.scanner = logicalId(store.scannerRole);
	roles.decide = logicalId(stack.scanPipeline.decideRole);
	roles.job = logicalId(store.backdoorJobRole);
	roles.sweeper = logicalId(store.sweeperRole);
	roles.breakGlass = logicalId(store.breakGlassRole);
	recordFn = fnArn(logicalId(stack.scanPipeline.functions.record));
	markFn = fnArn(logicalId(stack.scanPipeline.functions.mark));
});

function sign(role: string, context: Record<string, string> = {}, identityPolicies = resolver.identityPolicies(role)) {
	return decide({
		roleArn: resolver.roleArn(role),
		identityPolicies,
		action: "kms:Sign",
		resource: keyArn,
		resourcePolicy: keyPolicy,
		context: { "kms:MessageType": "DIGEST", "kms:SigningAlgorithm": "ECDSA_SHA_256", ...context },
	});
}

describe("provenance key", () => {
	it("is an ECC_NIST_P256 signing key, retained, and its ARN is the record function's FTGUARD_PROVENANCE_KMS_KEY", () => {
		const { stack } = sharedFtguard();
		const keyId = logicalId(stack.scanPipeline.provenanceKey.key);
		const key = template.Resources[keyId] as unknown as { Properties: Record<string, unknown>; DeletionPolicy: string };
		expect(key.Properties).toMatchObject({ KeySpec: "ECC_NIST_P256", KeyUsage: "SIGN_VERIFY" });
		expect(key.DeletionPolicy).toBe("Retain");
		const env = (id: string) =>
			(template.Resources[id]?.Properties?.Environment as { Variables?: Record<string, unknown> } | undefined)
				?.Variables ?? {};
		expect(env(logicalId(stack.scanPipeline.functions.record)).FTGUARD_PROVENANCE_KMS_KEY).toEqual({
			"Fn::GetAtt": [keyId, "Arn"],
		});
		for (const step of ["mark", "manifest", "signature", "files", "decide"] as const) {
			expect(env(logicalId(stack.scanPipeline.functions[step]))).not.toHaveProperty("FTGUARD_PROVENANCE_KMS_KEY");
		}
	});

	it("the record function (verdict role) may sign; mark, running as the same role, may not", async () => {
		expect(await sign(roles.verdict, { "lambda:SourceFunctionArn": recordFn })).toBe("Allowed");
		expect(await sign(roles.verdict, { "lambda:SourceFunctionArn": markFn })).not.toBe("Allowed");
		// the same role's credentials used outside a function
		expect(await sign(roles.verdict)).not.toBe("Allowed");
		// only digests, only ECDSA_SHA_256
		expect(await sign(roles.verdict, { "lambda:SourceFunctionArn": recordFn, "kms:MessageType": "RAW" })).not.toBe(
			"Allowed",
		);
	});

	it("no other pipeline role may sign — not even with an identity policy allowing kms:* on every key", async () => {
		const everything = [
			{
				name: "admin",
				policy: { Version: "2012-10-17", Statement: [{ Effect: "Allow", Action: "kms:*", Resource: "*" }] },
			},
		];
		for (const role of [roles.scanner, roles.decide, roles.job, roles.sweeper, roles.breakGlass]) {
			expect(await sign(role, {}), role).not.toBe("Allowed");
			expect(await sign(role, {}, everything), role).toBe("ExplicitlyDenied");
		}
	});

	it("anyone in the account whose IAM allows it may read the public key to verify", async () => {
		const verifier = {
			name: "verify",
			policy: {
				Version: "2012-10-17",
				Statement: [{ Effect: "Allow", Action: "kms:GetPublicKey", Resource: keyArn }],
			},
		};
		const read = (identityPolicies: { name: string; policy: unknown }[]) =>
			decide({
				roleArn: `arn:aws:iam::${ACCOUNT}:role/deploy-verifier`,
				identityPolicies,
				action: "kms:GetPublicKey",
				resource: keyArn,
				resourcePolicy: keyPolicy,
			});
		expect(await read([verifier])).toBe("Allowed");
		expect(await read([])).toBe("ImplicitlyDenied");
	});

	it("the isolated network has a KMS interface endpoint for the record function", () => {
		const endpoints = Object.values(template.Resources).filter(
			(r) => r.Type === "AWS::EC2::VPCEndpoint" && JSON.stringify(r.Properties?.ServiceName ?? "").includes(".kms"),
		);
		expect(endpoints).toHaveLength(1);
	});

	it("creates no dependency cycle (the key policy, the function and its sign policy)", () => {
		// CloudFormation refuses a template whose references loop; CDK's synth does not check within a stack
		const deps = new Map<string, Set<string>>();
		const collect = (v: unknown, into: Set<string>) => {
			if (Array.isArray(v)) for (const x of v) collect(x, into);
			else if (v && typeof v === "object") {
				for (const [k, x] of Object.entries(v)) {
					if (k === "Ref" && typeof x === "string") into.add(x);
					else if (k === "Fn::GetAtt" && Array.isArray(x)) into.add(String(x[0]));
					else collect(x, into);
				}
			}
		};
		for (const [id, r] of Object.entries(template.Resources)) {
			const into = new Set<string>();
			collect(r.Properties ?? {}, into);
			const dependsOn = (r as { DependsOn?: string | string[] }).DependsOn;
			for (const d of [dependsOn ?? []].flat()) into.add(d);
			deps.set(id, new Set([...into].filter((d) => d in template.Resources)));
		}
		const state = new Map<string, 1 | 2>();
		const visit = (id: string, path: string[]): string[] | undefined => {
			if (state.get(id) === 2) return undefined;
			if (state.get(id) === 1) return [...path, id];
			state.set(id, 1);
			for (const d of deps.get(id) ?? []) {
				const cycle = visit(d, [...path, id]);
				if (cycle) return cycle;
			}
			state.set(id, 2);
			return undefined;
		};
		for (const id of deps.keys()) expect(visit(id, [])).toBeUndefined();
	});
});
