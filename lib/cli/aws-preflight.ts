/**
 * `ftguard aws preflight`: before a first `cdk deploy`, with the caller's credentials, whether the account and region
 * can run what the deployment asks for —
 *
 * - the EC2 quota "Running On-Demand G and VT instances" (vCPUs, L-DB2E81BA) ≥ the compute environment's max vCPUs;
 * - Lambda's concurrent executions − what the pipeline reserves (lib/infra/tags.ts reservedConcurrencyTotal) ≥ 100,
 *   the unreserved minimum Lambda keeps (it refuses a reservation that leaves fewer);
 * - every GPU instance family of the compute environment offered in some availability zone of the region.
 *
 * Exit 0 all there, 1 something missing (each named), 2 could not check (AWS_CREDENTIALS, AWS_API_ERROR, USAGE).
 * The SDK clients are injected ({@link PreflightClients}) so the logic is tested with recorded responses.
 */
import { DescribeAvailabilityZonesCommand, DescribeInstanceTypeOfferingsCommand, EC2Client } from "@aws-sdk/client-ec2";
import { GetAccountSettingsCommand, LambdaClient } from "@aws-sdk/client-lambda";
import {
	GetAWSDefaultServiceQuotaCommand,
	GetServiceQuotaCommand,
	ServiceQuotasClient,
} from "@aws-sdk/client-service-quotas";
import { FtguardError } from "../core/errors";
import { GPU_DEFAULTS, loadDeployConfig } from "../infra/config";
import { reservedConcurrencyTotal } from "../infra/tags";
import { awsError } from "./aws-common";
import { type ExitCode, type Io, printJson } from "./io";

/** Service Quotas code of "Running On-Demand G and VT instances" (vCPUs) in service `ec2`. */
export const GVT_QUOTA_CODE = "L-DB2E81BA";
/** Unreserved concurrency Lambda always keeps: a reservation that would leave less is refused. */
export const LAMBDA_UNRESERVED_MINIMUM = 100;

const PERMISSIONS =
	"the caller needs servicequotas:GetServiceQuota, servicequotas:GetAWSDefaultServiceQuota, lambda:GetAccountSettings, ec2:DescribeInstanceTypeOfferings and ec2:DescribeAvailabilityZones";

export interface PreflightClients {
	quotas: Pick<ServiceQuotasClient, "send">;
	lambda: Pick<LambdaClient, "send">;
	ec2: Pick<EC2Client, "send">;
}

/** What the deployment will ask of the account. */
export interface PreflightTarget {
	maxVcpus: number;
	instanceClasses: readonly string[];
	reservedConcurrency: number;
}

export interface PreflightCheck {
	id: "gpu-vcpu-quota" | "lambda-concurrency" | "gpu-instance-classes";
	ok: boolean;
	/** one line: what was found against what is needed; for a missing item, what to do */
	message: string;
	required: number | string[];
	actual: number | string[] | Record<string, string[]>;
	/** not failures: things worth knowing (a family offered in only some zones, other functions' reservations) */
	warnings: string[];
}

export interface PreflightReport {
	ok: boolean;
	region: string;
	target: PreflightTarget;
	checks: PreflightCheck[];
	missing: string[];
}

async function call<T>(name: string, f: () => Promise<T>): Promise<T> {
	try {
		return await f();
	} catch (e) {
		throw awsError(e, name, PERMISSIONS);
	}
}

async function gpuQuota(clients: PreflightClients, target: PreflightTarget): Promise<PreflightCheck> {
	const input = { ServiceCode: "ec2", QuotaCode: GVT_QUOTA_CODE };
	let value: number | undefined;
	try {
		value = (await clients.quotas.send(new GetServiceQuotaCommand(input))).Quota?.Value;
	} catch (e) {
		// An account that never had the quota applied answers NoSuchResourceException: the AWS default holds.
		if ((e as { name?: string }).name !== "NoSuchResourceException") {
			throw awsError(e, "ServiceQuotas GetServiceQuota", PERMISSIONS);
		}
	}
	if (value === undefined) {
		value = (
			await call("ServiceQuotas GetAWSDefaultServiceQuota", () =>
				clients.quotas.send(new GetAWSDefaultServiceQuotaCommand(input)),
			)
		).Quota?.Value;
	}
	if (value === undefined) {
		throw new FtguardError("AWS_API_ERROR", `ServiceQuotas returned no value for ec2 ${GVT_QUOTA_CODE}`);
	}
	const ok = value >= target.maxVcpus;
	return {
		id: "gpu-vcpu-quota",
		ok,
		required: target.maxVcpus,
		actual: value,
		warnings: [],
		message: ok
			? `Running On-Demand G and VT instances (${GVT_QUOTA_CODE}): ${value} vCPUs ≥ max vCPUs ${target.maxVcpus}`
			: `Running On-Demand G and VT instances (${GVT_QUOTA_CODE}): ${value} vCPUs < max vCPUs ${target.maxVcpus}: request an increase to at least ${target.maxVcpus} (Service Quotas console, or aws service-quotas request-service-quota-increase --service-code ec2 --quota-code ${GVT_QUOTA_CODE} --desired-value ${target.maxVcpus}), or lower gpu.maxVcpus`,
	};
}

async function lambdaConcurrency(clients: PreflightClients, target: PreflightTarget): Promise<PreflightCheck> {
	const out = await call("Lambda GetAccountSettings", () => clients.lambda.send(new GetAccountSettingsCommand({})));
	const limit = out.AccountLimit?.ConcurrentExecutions;
	if (limit === undefined) throw new FtguardError("AWS_API_ERROR", "Lambda GetAccountSettings returned no limit");
	const unreserved = out.AccountLimit?.UnreservedConcurrentExecutions;
	const need = target.reservedConcurrency + LAMBDA_UNRESERVED_MINIMUM;
	const ok = limit >= need;
	const warnings: string[] = [];
	if (ok && unreserved !== undefined && unreserved - target.reservedConcurrency < LAMBDA_UNRESERVED_MINIMUM) {
		warnings.push(
			`only ${unreserved} executions are unreserved now (other functions reserve ${limit - unreserved}): a first deploy needs ${need} unreserved; ignore this if the ftguard stack is already deployed (its own reservations are counted in that figure)`,
		);
	}
	return {
		id: "lambda-concurrency",
		ok,
		required: need,
		actual: limit,
		warnings,
		message: ok
			? `Lambda concurrent executions: ${limit} ≥ ${target.reservedConcurrency} reserved by ftguard + ${LAMBDA_UNRESERVED_MINIMUM} unreserved`
			: `Lambda concurrent executions: ${limit} < ${target.reservedConcurrency} reserved by ftguard + ${LAMBDA_UNRESERVED_MINIMUM} unreserved: request an increase to at least ${need} (Service Quotas, lambda L-B99A9384)`,
	};
}

async function gpuOfferings(
	clients: PreflightClients,
	target: PreflightTarget,
	region: string,
): Promise<PreflightCheck> {
	const zones = await call("EC2 DescribeAvailabilityZones", () =>
		clients.ec2.send(
			new DescribeAvailabilityZonesCommand({
				Filters: [
					{ Name: "zone-type", Values: ["availability-zone"] },
					{ Name: "state", Values: ["available"] },
				],
			}),
		),
	);
	const allZones = (zones.AvailabilityZones ?? [])
		.map((z) => z.ZoneName)
		.filter((z): z is string => typeof z === "string")
		.sort();
	const offered = new Map<string, Set<string>>(target.instanceClasses.map((c) => [c, new Set<string>()]));
	let token: string | undefined;
	do {
		const page = await call("EC2 DescribeInstanceTypeOfferings", () =>
			clients.ec2.send(
				new DescribeInstanceTypeOfferingsCommand({
					LocationType: "availability-zone",
					Filters: [{ Name: "instance-type", Values: target.instanceClasses.map((c) => `${c}.*`) }],
					...(token ? { NextToken: token } : {}),
				}),
			),
		);
		for (const o of page.InstanceTypeOfferings ?? []) {
			const family = o.InstanceType?.split(".")[0];
			if (family !== undefined && o.Location) offered.get(family)?.add(o.Location);
		}
		token = page.NextToken;
	} while (token);
	const actual: Record<string, string[]> = Object.fromEntries(
		[...offered].map(([c, zs]) => [c, [...zs].sort()] as [string, string[]]),
	);
	const absent = target.instanceClasses.filter((c) => (actual[c] ?? []).length === 0);
	const warnings = target.instanceClasses
		.filter((c) => !absent.includes(c))
		.flatMap((c) => {
			const lacking = allZones.filter((z) => !(actual[c] ?? []).includes(z));
			return lacking.length === 0
				? []
				: [`${c} is not offered in ${lacking.join(", ")}: Batch launches ${c} only in the subnets of the other zones`];
		});
	const list = target.instanceClasses.map((c) => `${c} (${(actual[c] ?? []).join(", ") || "none"})`).join(", ");
	const ok = absent.length === 0;
	return {
		id: "gpu-instance-classes",
		ok,
		required: [...target.instanceClasses],
		actual,
		warnings,
		message: ok
			? `GPU instance families offered in ${region}: ${list}`
			: `GPU instance families not offered in any availability zone of ${region}: ${absent.join(", ")}: choose a region that offers them, or change gpu.instanceClasses`,
	};
}

/** Runs the three checks (in parallel); throws FtguardError when one could not be made. */
export async function preflight(
	clients: PreflightClients,
	target: PreflightTarget,
	region: string,
): Promise<PreflightReport> {
	const checks = await Promise.all([
		gpuQuota(clients, target),
		lambdaConcurrency(clients, target),
		gpuOfferings(clients, target, region),
	]);
	const missing = checks.filter((c) => !c.ok).map((c) => c.message);
	return { ok: missing.length === 0, region, target, checks, missing };
}

export function renderPreflight(r: PreflightReport): string {
	const lines = [`ftguard aws preflight: region ${r.region}`];
	for (const c of r.checks) {
		lines.push(`  ${c.ok ? "ok     " : "MISSING"}  ${c.message}`);
		for (const w of c.warnings) lines.push(`           warning: ${w}`);
	}
	lines.push(
		r.ok
			? "everything the deployment needs is there"
			: `${r.missing.length} missing: fix ${r.missing.length === 1 ? "it" : "them"} before cdk deploy`,
	);
	return lines.join("\n");
}

export interface PreflightFlags {
	config?: string;
	region?: string;
	json?: boolean;
}

/** The command body: target from --config (or the deployment defaults), region from --region, config or the SDK. */
export async function runPreflight(
	io: Io,
	flags: PreflightFlags,
	makeClients: (region: string | undefined) => PreflightClients & { region: () => Promise<string> } = sdkClients,
): Promise<ExitCode> {
	const config = flags.config ? loadDeployConfig(flags.config) : undefined;
	const target: PreflightTarget = {
		maxVcpus: config?.gpu.maxVcpus ?? GPU_DEFAULTS.maxVcpus,
		instanceClasses: config?.gpu.instanceClasses ?? [...GPU_DEFAULTS.instanceClasses],
		reservedConcurrency: reservedConcurrencyTotal(),
	};
	const clients = makeClients(flags.region ?? config?.region);
	const region = await call("resolving the region", clients.region);
	const report = await preflight(clients, target, region);
	if (io.json) printJson(io, report);
	else io.out(renderPreflight(report));
	return report.ok ? 0 : 1;
}

function sdkClients(region: string | undefined): PreflightClients & { region: () => Promise<string> } {
	const options = { ...(region ? { region } : {}), maxAttempts: 3 };
	const ec2 = new EC2Client(options);
	return {
		quotas: new ServiceQuotasClient(options),
		lambda: new LambdaClient(options),
		ec2,
		region: async () => {
			const r = await ec2.config.region();
			if (!r) throw new FtguardError("USAGE", "no AWS region: pass --region or set AWS_REGION");
			return r;
		},
	};
}
