// An HTTPS GET with Node's https module: the name looked up (`lookup`)
// always resolves to 127.0.0.1, the certificate is verified for HOST
// (`servername` and the default checkServerIdentity).
//
// usage: node https_get.js HOST PORT [CA_FILE]   (without CA_FILE: Node's
// bundled Mozilla roots). Prints the body and exits 0; the error and exits 1.
const fs = require('fs');
const https = require('https');

const [host, port, caFile] = process.argv.slice(2);
// With autoSelectFamily (Node 20's default) lookup is asked for all addresses.
const lookup = (_name, opts, cb) =>
  opts.all ? cb(null, [{ address: '127.0.0.1', family: 4 }]) : cb(null, '127.0.0.1', 4);
const options = { host, port: Number(port), path: '/', servername: host, lookup, agent: false, timeout: 20000 };
if (caFile) options.ca = fs.readFileSync(caFile);

const req = https.get(options, (res) => {
  let body = '';
  res.setEncoding('utf8');
  res.on('data', (chunk) => (body += chunk));
  res.on('end', () => {
    process.stdout.write(body);
    process.exit(0);
  });
});
req.on('timeout', () => req.destroy(new Error('timed out')));
req.on('error', (e) => {
  console.log(`${e.code || ''} ${e.message}`.trim());
  process.exit(1);
});
