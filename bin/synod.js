#!/usr/bin/env node
// The `synod` command. The TypeScript sources are compiled to dist/ by `npm install`
// (the package's `prepare` script), so this file only hands over to the compiled CLI.
import { main } from "../dist/cli/main.js";

main(process.argv).then(
  (code) => {
    process.exitCode = code;
  },
  (error) => {
    console.error(error instanceof Error ? (error.stack ?? error.message) : String(error));
    process.exitCode = 1;
  },
);
