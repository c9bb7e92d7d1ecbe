/** `ftguard dp epsilon`: the privacy a DP-SGD run spends (ε at δ), for a planner or a CI gate (docs/dp.md). */
import type { Command } from "commander";
import { type Conversion, dpRunProblem, dpSgdEpsilon, stepsForEpochs } from "../core/dp/rdp";
import { FtguardError } from "../core/errors";
import { type ExitCode, type Io, printJson, processIo, runCommand } from "./io";

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
