// Writes jest's totals to .jest-totals.json so .ci/run can print them as its plain last line
// (`tests: N passed, N failed`), which is what CI reads; jest's own summary is not recognised there.
const fs = require('node:fs');
const path = require('node:path');

class TotalsReporter {
  onRunComplete(_contexts, results) {
    const totals = {
      passed: results.numPassedTests,
      failed: results.numFailedTests + results.numRuntimeErrorTestSuites,
      skipped: results.numPendingTests + results.numTodoTests,
    };
    fs.writeFileSync(path.join(process.cwd(), '.jest-totals.json'), JSON.stringify(totals));
  }
}
module.exports = TotalsReporter;
