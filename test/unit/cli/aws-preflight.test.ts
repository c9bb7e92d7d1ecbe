/**
 * `ftguard aws preflight`'s logic against recorded AWS responses: real SDK clients (their serializers, protocol
 * parsers and error handling) whose HTTP handler answers with the bytes Service Quotas, Lambda and EC2 return, so
 * nothing leaves the machine. What it proves: each shortfall is found and named (G/VT vCPU quota below the max
 * vCPUs, Lambda concurrency below ftguard's reservations + 100, a GPU family offered in no zone), the quota falls back
 * to the AWS default where none was applied, offerings are paged, and an API failure or missing credentials is
 * "could not check" with a stable code, never a pass.
 */
import { Readable } from "node:stream";
import { EC2Client } from "@aws-sdk/client-ec2";
import { LambdaClient } from "@aws-sdk/client-lambda";
import { ServiceQuotasClient } from "@aws-sdk/client-service-quotas";
import { describe, expect, it } from "vitest";
import {
	GVT_QUOTA_CODE,
	type PreflightClients,
	preflight,
	renderPreflight,
	runPreflight,
} from "../../../lib/cli/aws-preflight";
import type { Io } from "../../../lib/cli/io";
import { FtguardError } from "../../../lib/core/errors";
import { GPU_DEFAULTS } from "../../../lib/infra/config";
import { RESERVED_CONCURRENCY, reservedConcurrencyTotal } from "../../../lib/infra/tags";
import { ftguard, REPO } from "../../helpers/cli";

interface Recorded {
	status: number;
	headers?: Record<string, string>;
	body: string;
}
interface SeenRequest {
	method: string;
	path: string;
	headers: Record<string, string>;
	body: string;
}

/** An SDK request handler that answers from `answer` and keeps every request it saw. */
function recordedHandler(answer: (r: SeenRequest) => Recorded, seen: SeenRequest[]) {
	return {
		async handle(request: { method: string; path: string; headers: Record<string, string>; body?: unknown }) {
			const raw = request.body;
			const body =
				typeof raw === "string"
					? raw
					: raw instanceof Uint8Array
						? new TextDecoder().decode(raw)
						: raw
							? String(raw)
							: "";
			const r: SeenRequest = { method: request.method, path: request.path, headers: request.headers, body };
			seen.push(r);
			const a = answer(r);
			return {
				response: {
					statusCode: a.status,
					headers: { "x-amzn-requestid": "rec-1", ...a.headers },
					body: Readable.from([Buffer.from(a.body)]),
				},
			};
		},
		updateHttpClientConfig() {},
		httpHandlerConfigs: () => ({}),
	};
}

// ---- recorded responses (shapes as the services return them) ---------------------------------------------------

const quota = (value: number) =>
	JSON.stringify({
		Quota: {
			ServiceCode: "ec2",
			ServiceName: "Amazon Elastic Compute Cloud (Amazon EC2)",
			QuotaArn: `arn:aws:servicequotas:eu-west-1:123456789012:ec2/${GVT_QUOTA_CODE}`,
			QuotaCode: GVT_QUOTA_CODE,
			QuotaName: "Running On-Demand G and VT instances",
			Value: value,
			Unit: "None",
			Adjustable: true,
			GlobalQuota: false,
		},
	});
const jsonError = (type: string, message: string, status = 400): Recorded => ({
	status,
	headers: { "x-amzn-errortype": `${type}:http://internal.amazon.com/coral/com.amazonaws.servicequotas/` },
	body: JSON.stringify({ __type: type, Message: message }),
});
const accountSettings = (limit: number, unreserved: number) =>
	JSON.stringify({
		AccountLimit: {
			TotalCodeSize: 80530636800,
			CodeSizeUnzipped: 262144000,
			CodeSizeZipped: 52428800,
			ConcurrentExecutions: limit,
			UnreservedConcurrentExecutions: unreserved,
		},
		AccountUsage: { TotalCodeSize: 0, FunctionCount: 0 },
	});
const EC2_NS = "http://ec2.amazonaws.com/doc/2016-11-15/";
const zonesXml = (zones: string[]) =>
	`<?xml version="1.0" encoding="UTF-8"?>
<DescribeAvailabilityZonesResponse xmlns="${EC2_NS}"><requestId>r1</requestId><availabilityZoneInfo>${zones
		.map(
			(z, i) =>
				`<item><optInStatus>opt-in-not-required</optInStatus><zoneName>${z}</zoneName><zoneId>euw1-az${i + 1}</zoneId><zoneState>available</zoneState><regionName>eu-west-1</regionName><zoneType>availability-zone</zoneType></item>`,
		)
		.join("")}</availabilityZoneInfo></DescribeAvailabilityZonesResponse>`;
const offeringsXml = (offers: [string, string][], nextToken?: string) =>
	`<?xml version="1.0" encoding="UTF-8"?>
<DescribeInstanceTypeOfferingsResponse xmlns="${EC2_NS}"><requestId>r2</requestId><instanceTypeOfferingSet>${offers
		.map(
			([t, z]) =>
				`<item><instanceType>${t}</instanceType><locationType>availability-zone</locationType><location>${z}</location></item>`,
		)
		.join(
			"",
		)}</instanceTypeOfferingSet>${nextToken ? `<nextToken>${nextToken}</nextToken>` : ""}</DescribeInstanceTypeOfferingsResponse>`;
const ec2Error = (code: string, message: string, status = 403): Recorded => ({
	status,
	body: `<?xml version="1.0" encoding="UTF-8"?><Response><Errors><Error><Code>${code}</Code><Message>${message}</Message></Error></Errors><RequestID>r3</RequestID></Response>`,
});

const ZONES = ["eu-west-1a", "eu-west-1b", "eu-west-1c"];

interface Account {
	quota?: Recorded;
	defaultQuota?: Recorded;
	lambda?: Recorded;
	zones?: Recorded;
	/** pages of offerings, in order */
	offerings?: Recorded[];
}

const GOOD: Required<Pick<Account, "quota" | "lambda" | "zones" | "offerings">> = {
	quota: { status: 200, body: quota(128) },
	lambda: { status: 200, body: accountSettings(1000, 1000) },
	zones: { status: 200, body: zonesXml(ZONES) },
	offerings: [
		{
			status: 200,
			body: offeringsXml(
				[
					["g5.2xlarge", "eu-west-1a"],
					["g5.4xlarge", "eu-west-1b"],
					["g5.2xlarge", "eu-west-1c"],
				],
				"page-2",
			),
		},
		{
			status: 200,
			body: offeringsXml([
				["g6.2xlarge", "eu-west-1a"],
				["g6.12xlarge", "eu-west-1b"],
			]),
		},
	],
};

function recordedAccount(account: Account): {
	clients: PreflightClients;
	seen: { quotas: SeenRequest[]; lambda: SeenRequest[]; ec2: SeenRequest[] };
} {
	const seen = { quotas: [] as SeenRequest[], lambda: [] as SeenRequest[], ec2: [] as SeenRequest[] };
	const a = { ...GOOD, ...account };
	const common = {
		region: "eu-west-1",
		credentials: { accessKeyId: "AKIDEXAMPLE", secretAccessKey: "secret" },
		maxAttempts: 1,
	};
	let page = 0;
	return {
		seen,
		clients: {
			quotas: new ServiceQuotasClient({
				...common,
				requestHandler: recordedHandler((r) => {
					const target = r.headers["x-amz-target"] ?? "";
					if (target.endsWith(".GetServiceQuota")) return a.quota;
					if (target.endsWith(".GetAWSDefaultServiceQuota"))
						return a.defaultQuota ?? jsonError("NoSuchResourceException", "none");
					throw new Error(`unexpected Service Quotas call ${target}`);
				}, seen.quotas),
			}),
			lambda: new LambdaClient({
				...common,
				requestHandler: recordedHandler((r) => {
					if (r.path.startsWith("/2016-08-19/account-settings")) return a.lambda;
					throw new Error(`unexpected Lambda call ${r.path}`);
				}, seen.lambda),
			}),
			ec2: new EC2Client({
				...common,
				requestHandler: recordedHandler((r) => {
					if (r.body.includes("Action=DescribeAvailabilityZones")) return a.zones;
					if (r.body.includes("Action=DescribeInstanceTypeOfferings")) {
						const p = a.offerings[page++];
						if (!p) throw new Error("no more recorded pages");
						return p;
					}
					throw new Error(`unexpected EC2 call ${r.body}`);
				}, seen.ec2),
			}),
		},
	};
}

const TARGET = { maxVcpus: 64, instanceClasses: ["g5", "g6"], reservedConcurrency: reservedConcurrencyTotal() };

function captureIo(json: boolean): Io & { text: () => string } {
	let out = "";
	return {
		json,
		interactive: false,
		out: (t) => {
			out += t.endsWith("\n") ? t : `${t}\n`;
		},
		err: () => {},
		text: () => out,
	};
}

describe("ftguard aws preflight (recorded AWS responses)", () => {
	it("all there: quota, concurrency and both families → ok; the requests asked the right questions", async () => {
		const { clients, seen } = recordedAccount({});
		const r = await preflight(clients, TARGET, "eu-west-1");
		expect(r.ok).toBe(true);
		expect(r.missing).toEqual([]);
		const byId = Object.fromEntries(r.checks.map((c) => [c.id, c]));
		expect(byId["gpu-vcpu-quota"]).toMatchObject({ ok: true, actual: 128, required: 64 });
		expect(byId["lambda-concurrency"]).toMatchObject({
			ok: true,
			actual: 1000,
			required: TARGET.reservedConcurrency + 100,
		});
		expect(byId["gpu-instance-classes"]?.actual).toEqual({
			g5: ["eu-west-1a", "eu-west-1b", "eu-west-1c"],
			g6: ["eu-west-1a", "eu-west-1b"],
		});
		// offered in only two zones: a warning, not a failure
		expect(byId["gpu-instance-classes"]?.warnings).toEqual([expect.stringMatching(/^g6 is not offered in eu-west-1c/)]);
		// the G/VT quota by its code, in service ec2
		expect(JSON.parse(seen.quotas[0]?.body ?? "{}")).toEqual({ ServiceCode: "ec2", QuotaCode: "L-DB2E81BA" });
		// offerings per availability zone, filtered to the families, and the second page asked for by its token
		const offerings = seen.ec2.filter((q) => q.body.includes("DescribeInstanceTypeOfferings"));
		expect(offerings).toHaveLength(2);
		expect(offerings[0]?.body).toContain("LocationType=availability-zone");
		expect(decodeURIComponent(offerings[0]?.body ?? "")).toMatch(
			/Filter\.1\.Name=instance-type&Filter\.1\.Value\.1=g5\.\*&Filter\.1\.Value\.2=g6\.\*/,
		);
		expect(offerings[1]?.body).toContain("NextToken=page-2");
		expect(renderPreflight(r)).toMatch(/everything the deployment needs is there$/);
	});

	it("a new account: G/VT quota 0, Lambda concurrency 10, g6 nowhere → 1, each named with what to do", async () => {
		const { clients } = recordedAccount({
			quota: { status: 200, body: quota(0) },
			lambda: { status: 200, body: accountSettings(10, 10) },
			offerings: [{ status: 200, body: offeringsXml([["g5.2xlarge", "eu-west-1a"]]) }],
		});
		const r = await preflight(clients, TARGET, "eu-west-1");
		expect(r.ok).toBe(false);
		expect(r.missing).toHaveLength(3);
		expect(r.missing[0]).toMatch(
			/^Running On-Demand G and VT instances \(L-DB2E81BA\): 0 vCPUs < max vCPUs 64: request an increase to at least 64/,
		);
		expect(r.missing[1]).toMatch(
			new RegExp(
				`^Lambda concurrent executions: 10 < ${TARGET.reservedConcurrency} reserved by ftguard \\+ 100 unreserved: request an increase to at least ${TARGET.reservedConcurrency + 100}`,
			),
		);
		expect(r.missing[2]).toMatch(/^GPU instance families not offered in any availability zone of eu-west-1: g6:/);
		expect(renderPreflight(r)).toMatch(/^ {2}MISSING {2}Running On-Demand G and VT/m);
	});

	it("exactly at the limits passes: quota = max vCPUs, concurrency = reserved + 100", async () => {
		const { clients } = recordedAccount({
			quota: { status: 200, body: quota(64) },
			lambda: {
				status: 200,
				body: accountSettings(TARGET.reservedConcurrency + 100, TARGET.reservedConcurrency + 100),
			},
		});
		expect((await preflight(clients, TARGET, "eu-west-1")).ok).toBe(true);
		const { clients: short } = recordedAccount({
			lambda: { status: 200, body: accountSettings(TARGET.reservedConcurrency + 99, 1000) },
		});
		expect((await preflight(short, TARGET, "eu-west-1")).missing).toEqual([
			expect.stringMatching(/^Lambda concurrent executions/),
		]);
	});

	it("other functions' reservations leave too few unreserved: a warning (the stack may already be deployed)", async () => {
		const { clients } = recordedAccount({ lambda: { status: 200, body: accountSettings(1000, 150) } });
		const r = await preflight(clients, TARGET, "eu-west-1");
		expect(r.ok).toBe(true);
		expect(r.checks.find((c) => c.id === "lambda-concurrency")?.warnings).toEqual([
			expect.stringMatching(/^only 150 executions are unreserved now \(other functions reserve 850\)/),
		]);
	});

	it("no applied quota (NoSuchResourceException): the AWS default is used", async () => {
		const { clients, seen } = recordedAccount({
			quota: jsonError(
				"NoSuchResourceException",
				"The request failed because the specified service quota does not exist.",
			),
			defaultQuota: { status: 200, body: quota(0) },
		});
		const r = await preflight(clients, TARGET, "eu-west-1");
		expect(seen.quotas.map((q) => q.headers["x-amz-target"])).toEqual([
			"ServiceQuotasV20190624.GetServiceQuota",
			"ServiceQuotasV20190624.GetAWSDefaultServiceQuota",
		]);
		expect(r.checks[0]).toMatchObject({ id: "gpu-vcpu-quota", ok: false, actual: 0 });
	});

	it("access denied → AWS_API_ERROR (exit 2) naming the call and the permissions, never a pass", async () => {
		const { clients } = recordedAccount({
			offerings: [ec2Error("UnauthorizedOperation", "You are not authorized to perform this operation.")],
		});
		const e = await preflight(clients, TARGET, "eu-west-1").catch((x: unknown) => x);
		expect(e).toBeInstanceOf(FtguardError);
		expect((e as FtguardError).code).toBe("AWS_API_ERROR");
		expect((e as FtguardError).exitCode).toBe(2);
		expect((e as FtguardError).message).toMatch(
			/^EC2 DescribeInstanceTypeOfferings failed: UnauthorizedOperation: You are not authorized.*ec2:DescribeInstanceTypeOfferings/,
		);
		const { clients: q } = recordedAccount({
			quota: jsonError("AccessDeniedException", "User is not authorized", 403),
		});
		const e2 = (await preflight(q, TARGET, "eu-west-1").catch((x: unknown) => x)) as FtguardError;
		expect(e2.code).toBe("AWS_API_ERROR");
		expect(e2.message).toMatch(/^ServiceQuotas GetServiceQuota failed: AccessDeniedException/);
	});

	it("credentials the service refuses (expired token) → AWS_CREDENTIALS", async () => {
		const { clients } = recordedAccount({
			lambda: {
				status: 403,
				headers: { "x-amzn-errortype": "UnrecognizedClientException" },
				body: JSON.stringify({ message: "The security token included in the request is invalid." }),
			},
		});
		const e = (await preflight(clients, TARGET, "eu-west-1").catch((x: unknown) => x)) as FtguardError;
		expect(e.code).toBe("AWS_CREDENTIALS");
		expect(e.message).toMatch(/^no usable AWS credentials for Lambda GetAccountSettings/);
	});

	it("runPreflight: the config's GPU settings are the target; --json is one document; exit 1 when missing", async () => {
		const { clients, seen } = recordedAccount({ quota: { status: 200, body: quota(32) } });
		const io = captureIo(true);
		const code = await runPreflight(io, { config: `${REPO}/examples/ftguard.config.json`, json: true }, () => ({
			...clients,
			region: async () => "eu-west-1",
		}));
		expect(code).toBe(1);
		const doc = JSON.parse(io.text()) as { ok: boolean; target: unknown; missing: string[] };
		expect(doc.ok).toBe(false);
		expect(doc.target).toEqual({
			maxVcpus: 64,
			instanceClasses: ["g5", "g6"],
			reservedConcurrency: TARGET.reservedConcurrency,
		});
		expect(doc.missing).toEqual([expect.stringMatching(/32 vCPUs < max vCPUs 64/)]);
		expect(seen.lambda).toHaveLength(1);
	});

	it("without --config: the deployment's defaults and the pipeline's reservations (9 functions × 10 + the sweeper)", async () => {
		expect(reservedConcurrencyTotal()).toBe(9 * RESERVED_CONCURRENCY.perFunction + 1);
		const { clients } = recordedAccount({});
		const io = captureIo(true);
		expect(await runPreflight(io, { json: true }, () => ({ ...clients, region: async () => "eu-west-1" }))).toBe(0);
		expect((JSON.parse(io.text()) as { target: unknown }).target).toEqual({
			maxVcpus: GPU_DEFAULTS.maxVcpus,
			instanceClasses: [...GPU_DEFAULTS.instanceClasses],
			reservedConcurrency: reservedConcurrencyTotal(),
		});
	});
});

describe("ftguard aws preflight (the CLI, no account)", () => {
	const noCredentials = {
		AWS_ACCESS_KEY_ID: "",
		AWS_SECRET_ACCESS_KEY: "",
		AWS_SESSION_TOKEN: "",
		AWS_PROFILE: "",
		AWS_CONFIG_FILE: "/nonexistent/ftguard-test",
		AWS_SHARED_CREDENTIALS_FILE: "/nonexistent/ftguard-test",
		AWS_EC2_METADATA_DISABLED: "true",
		AWS_CONTAINER_CREDENTIALS_RELATIVE_URI: "",
		AWS_CONTAINER_CREDENTIALS_FULL_URI: "",
		AWS_WEB_IDENTITY_TOKEN_FILE: "",
	};

	it("no credentials anywhere → exit 2, AWS_CREDENTIALS, one line (and one JSON document with --json)", async () => {
		const r = await ftguard(["aws", "preflight", "--region", "eu-west-1"], { env: noCredentials });
		expect(r.code).toBe(2);
		expect(r.stderr.trim().split("\n")).toEqual([
			expect.stringMatching(
				/^ftguard: AWS_CREDENTIALS: no usable AWS credentials for \w+ \w+: Could not load credentials/,
			),
		]);
		const j = await ftguard(["aws", "preflight", "--region", "eu-west-1", "--json"], { env: noCredentials });
		expect(j.code).toBe(2);
		expect(j.json()).toMatchObject({ ok: false, error: { code: "AWS_CREDENTIALS" }, exitCode: 2 });
	}, 60_000);

	it("an invalid config → exit 2 USAGE naming the field, before any AWS call", async () => {
		const { mkdtempSync, writeFileSync } = await import("node:fs");
		const { tmpdir } = await import("node:os");
		const dir = mkdtempSync(`${tmpdir()}/ftguard-preflight-`);
		writeFileSync(
			`${dir}/c.json`,
			JSON.stringify({
				policy: { signers: [{ kind: "public-key", pem: "-----BEGIN PUBLIC KEY-----" }] },
				gpu: { maxVcpus: 0 },
			}),
		);
		const r = await ftguard(["aws", "preflight", "--config", `${dir}/c.json`, "--region", "eu-west-1"], {
			env: noCredentials,
		});
		expect(r.code).toBe(2);
		expect(r.stderr.trim()).toBe("ftguard: USAGE: gpu.maxVcpus: expected a positive integer");
	}, 60_000);

	it("--help names the checks and the exit codes", async () => {
		const r = await ftguard(["aws", "preflight", "--help"]);
		expect(r.code).toBe(0);
		expect(r.stdout).toContain("L-DB2E81BA");
		expect(r.stdout).toMatch(/--config <file>[\s\S]*--region <region>[\s\S]*--json/);
		expect(r.stdout).toMatch(/Exit codes: 0 all there, 1 something missing/);
	}, 60_000);
});
