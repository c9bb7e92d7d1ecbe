#!/usr/bin/env node
// The published entry point: registers tsx so the TypeScript sources run as they are
// (no build step between a clone and a working CLI), then hands over to the CLI.
import { register } from "tsx/esm/api";

register();
await import("./ftguard.ts");
