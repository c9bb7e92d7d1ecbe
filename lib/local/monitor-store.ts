/**
 * The local stand-in for the output monitor's DynamoDB table (lib/infra/output-monitor.ts): dynalite — DynamoDB's
 * API, validation and conditional writes over LevelDB, in memory — on loopback, with the table the construct
 * creates (key `modelVersion`). The monitor function talks to it through FTGUARD_DYNAMODB_ENDPOINT.
 */
import type { AddressInfo } from "node:net";
import { CreateTableCommand, DynamoDBClient } from "@aws-sdk/client-dynamodb";
import dynalite from "dynalite";
import { LOCAL_CREDENTIALS, LOCAL_REGION } from "./object-server";

export interface MonitorStore {
	endpoint: string;
	table: string;
	close(): Promise<void>;
}

export const LOCAL_MONITOR_TABLE = "ftguard-monitor-windows";

export async function startMonitorStore(): Promise<MonitorStore> {
	const server = dynalite({ createTableMs: 0, deleteTableMs: 0, updateTableMs: 0 });
	await new Promise<void>((resolve, reject) => {
		server.once("error", reject);
		server.listen(0, "127.0.0.1", () => resolve());
	});
	const endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
	const client = new DynamoDBClient({ endpoint, region: LOCAL_REGION, credentials: LOCAL_CREDENTIALS });
	await client.send(
		new CreateTableCommand({
			TableName: LOCAL_MONITOR_TABLE,
			KeySchema: [{ AttributeName: "modelVersion", KeyType: "HASH" }],
			AttributeDefinitions: [{ AttributeName: "modelVersion", AttributeType: "S" }],
			BillingMode: "PAY_PER_REQUEST",
		}),
	);
	client.destroy();
	return {
		endpoint,
		table: LOCAL_MONITOR_TABLE,
		close: () => new Promise<void>((resolve) => server.close(() => resolve())),
	};
}
