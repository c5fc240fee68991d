// Lint: typescript-eslint's recommended rules, plus the purity boundary for core/ and sim/
// (the tsconfig.pure.json build and src/purity.test.ts prove the same boundary two more ways).
import js from "@eslint/js";
import tseslint from "typescript-eslint";

const impure = [
  { name: "Date", message: "core/ and sim/ are pure: time comes in as ticks or virtual time." },
  { name: "setTimeout", message: "core/ and sim/ are pure: no timers." },
  { name: "setInterval", message: "core/ and sim/ are pure: no timers." },
  { name: "setImmediate", message: "core/ and sim/ are pure: no timers." },
  { name: "queueMicrotask", message: "core/ and sim/ are pure: no scheduling." },
  { name: "process", message: "core/ and sim/ are pure: no process access." },
  { name: "console", message: "core/ and sim/ are pure: return text, let the caller print it." },
];

export default tseslint.config(
  { ignores: ["dist/", "node_modules/", "data/"] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    files: ["**/*.ts"],
    rules: {
      "@typescript-eslint/no-unused-vars": ["error", { argsIgnorePattern: "^_", varsIgnorePattern: "^_" }],
      eqeqeq: ["error", "always"],
      "no-constant-condition": ["error", { checkLoops: false }],
    },
  },
  {
    files: ["src/core/**/*.ts", "src/sim/**/*.ts"],
    ignores: ["**/*.test.ts"],
    rules: {
      "no-restricted-globals": ["error", ...impure],
      "no-restricted-imports": ["error", { patterns: [{ group: ["node:*", "fs", "net", "http", "os", "path", "child_process", "worker_threads", "crypto"], message: "core/ and sim/ are pure: no I/O modules." }] }],
      "no-restricted-properties": [
        "error",
        { object: "Math", property: "random", message: "Use the injected seeded Prng." },
        { object: "Date", property: "now", message: "Time comes in as ticks or virtual time." },
      ],
      "no-restricted-syntax": ["error", { selector: "FunctionDeclaration[async=true], ArrowFunctionExpression[async=true], FunctionExpression[async=true]", message: "core/ and sim/ are synchronous state machines." }],
    },
  },
  {
    files: ["bin/**/*.js", "scripts/**/*.js", "*.js"],
    languageOptions: { globals: { process: "readonly", console: "readonly" } },
  },
  {
    // The examples are Node programs in JavaScript (type-checked by examples/tsconfig.json).
    files: ["examples/**/*.js"],
    languageOptions: {
      globals: Object.fromEntries(
        ["process", "console", "setTimeout", "clearTimeout", "performance", "fetch", "AbortSignal", "AbortController", "URL", "TextEncoder", "TextDecoder", "Buffer"].map((name) => [name, "readonly"]),
      ),
    },
  },
);
