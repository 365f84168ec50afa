// Generates src/generated/ (the contract's TypeScript types, guest side) from wit/plugin.wit
// with jco. Run it after changing the WIT: `npm run generate`.
//
// jco 1.35 reads the WIT through a WASI filesystem that, in this version, has no preopened
// directory unless the caller adds one ("failed to read path for WIT ... os error 44"), so
// this script maps the repository's wit/ folder in before asking jco for the types.
import { createRequire } from 'node:module';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const witDir = resolve(here, '../../../wit');
const outDir = resolve(here, '../src/generated');

const require = createRequire(import.meta.url);
// jco's own type generator lives in @bytecodealliance/jco-transpile, which jco depends on.
const transpileDir = resolve(dirname(require.resolve('@bytecodealliance/jco-transpile')), '..');
const fromTranspile = createRequire(join(transpileDir, 'package.json'));
const filesystem = await import(
  pathToFileURL(fromTranspile.resolve('@bytecodealliance/preview2-shim/filesystem')).href
);
filesystem._setPreopens({ [witDir]: witDir });
const { generateGuestTypes } = await import(pathToFileURL(join(transpileDir, 'dist/typegen.js')).href);

const files = await generateGuestTypes(join(witDir, 'plugin.wit'), {
  worldName: 'order-plugin',
  outDir: outDir + '/',
});
await rm(outDir, { recursive: true, force: true });
for (const [path, contents] of Object.entries(files)) {
  await mkdir(dirname(path), { recursive: true });
  await writeFile(path, contents);
  console.log(`wrote ${path.slice(resolve(here, '..').length + 1)}`);
}
