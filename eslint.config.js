// @ts-check
import js from "@eslint/js";
import globals from "globals";
import tseslint from "typescript-eslint";

/**
 * Rules that catch real bugs, not style (Prettier owns formatting): the type-aware checks for
 * promises (a floating promise is an unhandled rejection or a step that silently never ran),
 * awaiting non-promises, unused code, and the recommended JavaScript set.
 */
export default tseslint.config(
  // scripts/consumer/ is built against the packed package by scripts/consumer-check.sh.
  { ignores: ["dist/", "docs/api/", "coverage/", "node_modules/", ".multiconnect/", "scripts/consumer/"] },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      "@typescript-eslint/no-floating-promises": "error",
      "@typescript-eslint/no-misused-promises": "error",
      "@typescript-eslint/await-thenable": "error",
      "@typescript-eslint/no-unused-vars": ["error", { argsIgnorePattern: "^_", varsIgnorePattern: "^_", caughtErrors: "none" }],
      "@typescript-eslint/switch-exhaustiveness-check": ["error", { considerDefaultExhaustiveForUnions: true }],
      "@typescript-eslint/only-throw-error": "error",
      // Passing a driver's error on unchanged (typed `unknown`) is how adapters hand it to errors.ts.
      "@typescript-eslint/prefer-promise-reject-errors": ["error", { allowThrowingUnknown: true }],
      eqeqeq: ["error", "always", { null: "ignore" }],
      "no-constant-condition": ["error", { checkLoops: false }],
      // A timer handle declared before the closure that clears it, assigned once afterwards.
      "prefer-const": ["error", { ignoreReadBeforeAssign: true }],
      // Style, not bugs: an async function without await still returns a promise as its type says
      // (fake stores in tests implement async ports synchronously); assertions are reviewed by hand.
      "@typescript-eslint/require-await": "off",
      "@typescript-eslint/no-unnecessary-type-assertion": "off",
    },
  },
  {
    files: ["test/**/*.ts"],
    rules: {
      // vitest's asymmetric matchers (`expect.any(Number)`) are typed `any` by design.
      "@typescript-eslint/no-unsafe-assignment": "off",
      // Tests pass handler methods of port objects around; the ports' implementations use no `this`.
      "@typescript-eslint/unbound-method": "off",
    },
  },
  {
    // Plain JavaScript (scripts, this file): no type information to lint with.
    files: ["**/*.js", "**/*.mjs", "**/*.cjs"],
    ...tseslint.configs.disableTypeChecked,
    languageOptions: { ...tseslint.configs.disableTypeChecked.languageOptions, globals: globals.node },
  },
);
