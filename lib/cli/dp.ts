/**
 * `ftguard dp epsilon`: the privacy a DP-SGD run spends (ε at δ), for a planner or a CI gate; `ftguard dp check`: the
 * pipeline's DP-SGD gate over a checkpoint's ftguard-training.json (docs/dp.md).
 */
import { stat } from "node:fs/promises";
import { join } from "node:path";
import type { Command } from "commander";
import type { DpOutcome } from "../core/dp/gate";
import { type Conversion, dpRunProblem, dpSgdEpsilon, stepsForEpochs } from "../core/dp/rdp";
import { FtguardError, toFtguardError } from "../core/errors";
import { type ExitCode, type Io, printJson, processIo, readArgFile, readArgText, runCommand } from "./io";

interface EpsilonFlags {
	noiseMultiplier: string;
	sampleRate: string;
	steps?: string;
	epochs?: string;
	delta: string;
	conversion: string;
	maxEpsilon?: string;
	json?: boolean;
}

/** A number option: the whole string must be a finite number ("1e-5", "0.01"), else USAGE. */
function numberFlag(name: string, value: string): number {
	const n = Number(value);
	if (value.trim() === "" || !Number.isFinite(n))
		throw new FtguardError("USAGE", `${name} must be a number, not "${value}"`);
	return n;
}

export function registerDp(program: Command, setExit: (code: number) => void): void {
	const dp = program.command("dp").description("differential privacy of DP-SGD training (RDP accountant)");
	dp.command("epsilon")
		.description("ε at δ that a DP-SGD run spends (RDP accountant of the sampled Gaussian mechanism)")
		.requiredOption("--noise-multiplier <σ>", "noise standard deviation / clipping norm")
		.requiredOption("--sample-rate <q>", "chance an example is in a step's batch (batch size / dataset size)")
		.option("--steps <T>", "optimizer steps")
		.option("--epochs <E>", "passes over the data instead of --steps (steps = ⌈E / q⌉)")
		.requiredOption("--delta <δ>", "the δ of (ε, δ)-DP, below 1 / dataset size")
		.option("--conversion <balle2020|classic>", "RDP → (ε, δ) conversion", "balle2020")
		.option("--max-epsilon <ε>", "exit 1 when ε is above this (a CI gate)")
		.option("--json", "machine-readable output")
		.addHelpText(
			"after",
			`
ε is minimised over RDP orders 1.1…10.9 and 12…63 (Opacus's and TensorFlow Privacy's
defaults) and converted by Balle et al. 2020, Theorem 21 — what Opacus reports, a
proven bound tighter than the classic conversion (Mironov 2017), which older
TensorFlow Privacy tutorials quote and --conversion classic gives. TensorFlow
Privacy's MNIST setting:

  ftguard dp epsilon --noise-multiplier 1.1 --sample-rate 0.0042667 --steps 14063 --delta 1e-5
  ε = 2.597 at δ = 0.00001 (… classic: 3.008)

Exit codes: 0 computed (and within --max-epsilon), 1 above --max-epsilon,
2 parameters that cannot be accounted (USAGE).`,
		)
		.action(async (flags: EpsilonFlags) => {
			const io = processIo(Boolean(flags.json));
			setExit(await runCommand(io, async () => epsilon(io, flags)));
		});
	registerCheck(dp, setExit);
}

interface CheckFlags {
	policy?: string;
	family: string[];
	json?: boolean;
}

function registerCheck(dp: Command, setExit: (code: number) => void): void {
	dp.command("check")
		.description("the pipeline's DP-SGD gate over a checkpoint's ftguard-training.json")
		.argument("<artefact>", "a model directory (its ftguard-training.json and config.json) or a declaration file")
		.option("--policy <file.json>", "policy file (its dp section: required, maxEpsilon, maxDelta, families)")
		.option("--family <name>", "the model's family, beside the directory's config.json (repeatable)", collect, [])
		.option("--json", "machine-readable output")
		.addHelpText(
			"after",
			`
The declaration's DP-SGD run is re-accounted with ftguard's RDP accountant; a claimed ε
below that figure is refused, and the policy's limits for the model's families apply to
ftguard's figure, never to the claim. A directory without ftguard-training.json declares
no run (a problem only where the policy requires one).

  ftguard dp check ./checkpoint --policy policy.json

Exit codes: 0 passes the gate, 1 a problem (the pipeline would quarantine), 2 could not
check (no such path, unreadable policy).`,
		)
		.action(async (artefact: string, flags: CheckFlags) => {
			const io = processIo(Boolean(flags.json));
			setExit(await runCommand(io, async () => check(io, artefact, flags)));
		});
}

const collect = (value: string, previous: string[]) => [...previous, value];

async function check(io: Io, artefact: string, flags: CheckFlags): Promise<ExitCode> {
	const [{ defaultPolicy, parsePolicy }, { trainingChecks }, { familyOf, MAX_CONFIG_BYTES }, { TRAINING_METADATA }] =
		await Promise.all([
			import("../core/policy"),
			import("../core/pipeline/training"),
			import("../core/pipeline/model-info"),
			import("../core/training/metadata"),
		]);
	const policy =
		flags.policy === undefined
			? defaultPolicy()
			: parsePolicy(await readArgText(flags.policy, "the policy file"), flags.policy);
	let isDir: boolean;
	try {
		isDir = (await stat(artefact)).isDirectory();
	} catch (e) {
		throw toFtguardError(e, `cannot read ${artefact}`);
	}
	const file = isDir ? join(artefact, TRAINING_METADATA) : artefact;
	const exists =
		!isDir ||
		(await stat(file).then(
			() => true,
			() => false,
		));
	const families = [...flags.family];
	let unknownFamily = false;
	if (isDir) {
		// as the pipeline reads it: a config.json over 1 MiB, unparseable or silent names no family, and then every
		// family entry of the policy applies
		const config = await readArgFile(join(artefact, "config.json"), "config.json").catch(() => undefined);
		const family = config !== undefined && config.length <= MAX_CONFIG_BYTES ? familyOf(config) : undefined;
		if (family !== undefined) families.push(family);
		else unknownFamily = config !== undefined;
	}
	const input = exists
		? { kind: "read" as const, bytes: await readArgFile(file, "the training metadata") }
		: { kind: "absent" as const };
	const { training, dp } = trainingChecks(input, families, policy.dp, unknownFamily);
	const pass = dp.problems.length === 0;
	if (io.json) printJson(io, { pass, ...(training ? { training } : {}), dp });
	else printCheck(io, dp, pass);
	return pass ? 0 : 1;
}

function printCheck(io: Io, dp: DpOutcome, pass: boolean): void {
	if (dp.epsilon !== undefined) {
		const claim =
			dp.claimedEpsilon !== undefined ? `; claimed ${dp.claimedEpsilon} (${dp.accountant} accountant)` : "; no claim";
		io.out(
			`DP-SGD: ε = ${dp.epsilon.toFixed(3)} at δ = ${dp.delta} (RDP order ${dp.order}) — σ ${dp.noiseMultiplier}, q ${dp.sampleRate}, ${dp.steps} steps${claim}`,
		);
	} else if (!dp.declared) io.out("DP-SGD: no run declared");
	const limits = [
		dp.required ? "required" : "not required",
		dp.maxEpsilon !== undefined ? `maxEpsilon ${dp.maxEpsilon}` : "no maxEpsilon",
		`maxDelta ${dp.maxDelta}`,
	].join(", ");
	io.out(`policy: ${limits}${dp.families.length > 0 ? ` (family ${dp.families.join(", ")})` : ""}`);
	for (const n of dp.notes) io.out(`note: ${n}`);
	for (const p of dp.problems) io.out(`problem: ${p}`);
	io.out(pass ? "pass" : "fail: the pipeline would quarantine this checkpoint");
}

function epsilon(io: Io, flags: EpsilonFlags): ExitCode {
	if ((flags.steps === undefined) === (flags.epochs === undefined))
		throw new FtguardError("USAGE", "give exactly one of --steps and --epochs");
	if (flags.conversion !== "balle2020" && flags.conversion !== "classic")
		throw new FtguardError("USAGE", `--conversion must be "balle2020" or "classic", not "${flags.conversion}"`);
	const conversion: Conversion = flags.conversion;
	const sampleRate = numberFlag("--sample-rate", flags.sampleRate);
	let steps: number;
	if (flags.epochs !== undefined) {
		const epochs = numberFlag("--epochs", flags.epochs);
		if (epochs <= 0) throw new FtguardError("USAGE", `--epochs must be above 0, not ${epochs}`);
		// a sampling rate out of range gives no sensible step count; dpRunProblem names the rate before the steps
		steps = stepsForEpochs(epochs, sampleRate);
	} else steps = numberFlag("--steps", flags.steps as string);
	const run = {
		noiseMultiplier: numberFlag("--noise-multiplier", flags.noiseMultiplier),
		sampleRate,
		steps,
		delta: numberFlag("--delta", flags.delta),
	};
	const problem = dpRunProblem(run);
	if (problem !== undefined) throw new FtguardError("USAGE", problem);
	const max = flags.maxEpsilon === undefined ? undefined : numberFlag("--max-epsilon", flags.maxEpsilon);
	const r = dpSgdEpsilon(run, { conversion });
	const other = dpSgdEpsilon(run, { conversion: conversion === "classic" ? "balle2020" : "classic" });
	const over = max !== undefined && r.epsilon > max;
	if (io.json)
		printJson(io, {
			epsilon: r.epsilon,
			order: r.order,
			conversion,
			[conversion === "classic" ? "epsilon_balle2020" : "epsilon_classic"]: other.epsilon,
			delta: run.delta,
			noise_multiplier: run.noiseMultiplier,
			sample_rate: run.sampleRate,
			steps,
			order_at_edge: r.orderAtEdge,
			...(max !== undefined ? { max_epsilon: max, within: !over } : {}),
		});
	else {
		io.out(
			`ε = ${r.epsilon.toFixed(3)} at δ = ${run.delta} (RDP order ${r.order}; ${conversion === "classic" ? "classic" : "Balle et al. 2020"} conversion; ${conversion === "classic" ? "Balle et al. 2020" : "classic"}: ${other.epsilon.toFixed(3)}) — σ ${run.noiseMultiplier}, q ${run.sampleRate}, ${steps} steps`,
		);
		if (r.orderAtEdge) io.out("note: the best order is at the end of the range tried: ε may be smaller than this");
		if (max !== undefined) io.out(over ? `above the maximum ε ${max}` : `within the maximum ε ${max}`);
	}
	return over ? 1 : 0;
}
