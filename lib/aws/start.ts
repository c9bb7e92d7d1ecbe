/** The start state's AWS side: the scan execution, named by the scan id so that a duplicated event starts nothing. */
import { ExecutionAlreadyExists, type SFNClient, StartExecutionCommand } from "@aws-sdk/client-sfn";
import { FtguardError } from "../core/errors";

export type StartOutcome = { started: true; executionArn: string } | { started: false; reason: "duplicate" };

export async function startScanExecution(
	sfn: SFNClient,
	stateMachineArn: string,
	name: string,
	input: unknown,
): Promise<StartOutcome> {
	try {
		const r = await sfn.send(new StartExecutionCommand({ stateMachineArn, name, input: JSON.stringify(input) }));
		return { started: true, executionArn: r.executionArn ?? "" };
	} catch (e) {
		if (e instanceof ExecutionAlreadyExists || (e as { name?: string }).name === "ExecutionAlreadyExists") {
			return { started: false, reason: "duplicate" };
		}
		throw new FtguardError("IO_ERROR", `cannot start execution ${name}: ${(e as { name?: string }).name ?? "error"}`, {
			cause: e,
		});
	}
}
