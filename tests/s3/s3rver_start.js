'use strict';
// Starts s3rver (https://github.com/jamhall/s3rver, installed by s3rver.sh) on 127.0.0.1 for sluice's tests:
//   node s3rver_start.js --modules DIR --port-file F [--port N] [--directory D] [--bucket NAME]... [--verbose]
//                        [--parent-pid PID]
// DIR is where `npm ci` put node_modules (its parent). The chosen port is written to F atomically (temporary file
// and rename) once the server listens, and "listening on 127.0.0.1:PORT" is printed. SIGTERM or SIGINT close it
// (exit status 0). s3rver checks no SigV4 signature, but the access key must be S3RVER (secret S3RVER).
const fs = require('fs');
const os = require('os');
const path = require('path');

function usage(msg) {
  process.stderr.write('s3rver_start.js: ' + msg + '\n');
  process.exit(2);
}

const opts = { port: 0, buckets: [], verbose: false };
const argv = process.argv.slice(2);
for (let i = 0; i < argv.length; i++) {
  const a = argv[i];
  const val = () => (i + 1 < argv.length ? argv[++i] : usage(a + ' needs a value'));
  if (a === '--modules') opts.modules = val();
  else if (a === '--port-file') opts.portFile = val();
  else if (a === '--port') opts.port = Number(val());
  else if (a === '--directory') opts.directory = val();
  else if (a === '--bucket') opts.buckets.push(val());
  else if (a === '--parent-pid') opts.parentPid = Number(val());
  else if (a === '--verbose') opts.verbose = true;
  else usage('unknown option ' + a);
}
if (!opts.modules) usage('--modules DIR is required (where s3rver.sh installed s3rver)');
let S3rver;
try {
  S3rver = require(require.resolve('s3rver', { paths: [path.join(path.resolve(opts.modules), 'node_modules')] }));
} catch (e) {
  usage('s3rver is not installed under ' + opts.modules + ' (run tests/s3/s3rver.sh install): ' + e.message);
}
const directory = opts.directory || fs.mkdtempSync(path.join(os.tmpdir(), 's3rver-'));
const server = new S3rver({
  address: '127.0.0.1',
  port: opts.port,
  directory,
  silent: !opts.verbose,
  resetOnClose: !opts.directory,
  configureBuckets: opts.buckets.map(name => ({ name })),
});

function stop() {
  server.close().then(
    () => {
      if (!opts.directory) fs.rmSync(directory, { recursive: true, force: true });
      process.exit(0);
    },
    () => process.exit(0),
  );
}
process.on('SIGTERM', stop);
process.on('SIGINT', stop);

server.run().then(
  addr => {
    if (opts.portFile) {
      const tmp = path.join(path.dirname(path.resolve(opts.portFile)), '.port-' + process.pid);
      fs.writeFileSync(tmp, addr.port + '\n');
      fs.renameSync(tmp, opts.portFile);
    }
    process.stdout.write('listening on 127.0.0.1:' + addr.port + '\n');
    if (opts.parentPid) {
      // A test that crashed without stopping it leaves it to init: stop then, as gcs_server.py --parent-pid does.
      setInterval(() => {
        if (process.ppid !== opts.parentPid) stop();
      }, 200).unref();
    }
  },
  err => {
    process.stderr.write('s3rver_start.js: ' + err.message + '\n');
    process.exit(1);
  },
);
