// Type-checked lint over src/, test/ and scripts/ (generated code excluded: it is never edited by hand).
import { readdirSync } from 'node:fs';
import tseslint from 'typescript-eslint';

/**
 * The layers of src/ (README, "Layout"): each folder may import only the folders listed for it, so lower layers never
 * import higher ones. `generated` (the ts-proto output) imports nothing of ours and sits beside common at the bottom,
 * but only the wire and the processes that speak gRPC see it (wire, server, clients, players, cli): the layers between
 * keep their own types. scripts/check-import-cycles.ts (run by `npm test`) checks for import cycles within a folder too.
 */
const LAYERS = {
  common: [],
  wire: ['common', 'generated'],
  ffmpeg: ['common'],
  'index-store': ['common', 'ffmpeg'],
  media: ['common', 'ffmpeg', 'index-store'],
  show: ['common', 'ffmpeg', 'index-store', 'media'],
  server: ['common', 'generated', 'wire', 'ffmpeg', 'index-store', 'media', 'show'],
  clients: ['common', 'generated', 'wire'],
  players: ['common', 'generated', 'wire', 'ffmpeg', 'clients'],
  http: ['common', 'generated', 'wire', 'ffmpeg', 'index-store', 'media', 'show', 'server'],
  cli: ['common', 'generated', 'wire', 'ffmpeg', 'index-store', 'media', 'show', 'server', 'http', 'clients', 'players'],
};
const FOLDERS = [...Object.keys(LAYERS), 'generated'];
const unplaced = readdirSync(new URL('./src', import.meta.url), { withFileTypes: true })
  .filter((d) => d.isDirectory() && !FOLDERS.includes(d.name)).map((d) => `src/${d.name}`);
if (unplaced.length > 0) throw new Error(`eslint.config.mjs: ${unplaced.join(', ')} has no layer: add it to LAYERS (and to README, "Layout")`);

/** Only src/ffmpeg/native.ts loads beamcoder: everything else reaches FFmpeg through its typed surface. */
const BEAMCODER_ONLY_IN_NATIVE = { group: ['beamcoder', 'beamcoder/*'], message: 'Only src/ffmpeg/native.ts loads beamcoder.' };

/** The no-restricted-imports patterns that keep src/<folder> to its layer's imports (none for the top layer). */
function layerPatterns(folder) {
  const allowed = LAYERS[folder];
  const refused = FOLDERS.filter((f) => f !== folder && !allowed.includes(f));
  if (refused.length === 0) return [];
  return [{
    regex: `^\\.\\./(${refused.join('|')})(/|$)`,
    message: `src/${folder} may import only ${allowed.length === 0 ? 'its own files' : allowed.map((f) => `src/${f}`).join(', ')} ` +
      '(README, "Layout": a lower layer never imports a higher one).',
  }];
}

/**
 * One config per folder (a later config's options for a rule replace an earlier one's, so each carries the beamcoder
 * pattern too, except for native.ts).
 */
const layerConfigs = Object.keys(LAYERS).flatMap((folder) => [
  {
    files: [`src/${folder}/**/*.ts`],
    ignores: ['src/ffmpeg/native.ts'],
    rules: { 'no-restricted-imports': ['error', { patterns: [BEAMCODER_ONLY_IN_NATIVE, ...layerPatterns(folder)] }] },
  },
  ...(folder === 'ffmpeg'
    ? [{ files: ['src/ffmpeg/native.ts'], rules: { 'no-restricted-imports': ['error', { patterns: layerPatterns(folder) }] } }]
    : []),
]);

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', '.cache/**', 'src/generated/**', 'scripts/*.js', 'bin/**', 'eslint.config.mjs'] },
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: { parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname } },
    rules: {
      '@typescript-eslint/no-explicit-any': 'error',
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/explicit-module-boundary-types': 'error',
      'no-console': 'error',
    },
  },
  {
    files: ['**/*.ts'],
    ignores: ['src/ffmpeg/native.ts'],
    rules: {
      'no-restricted-imports': ['error', { patterns: [BEAMCODER_ONLY_IN_NATIVE] }],
      'no-restricted-syntax': ['error', {
        selector: "CallExpression[callee.name='require'] > Literal[value=/^beamcoder/], CallExpression[callee.property.name='resolve'] > Literal[value=/^beamcoder/]",
        message: 'Only src/ffmpeg/native.ts loads beamcoder.',
      }],
    },
  },
  ...layerConfigs,
  {
    // The native loader is the one place where beamcoder's untyped objects are handled (it types them for the rest).
    files: ['src/ffmpeg/native.ts'],
    rules: {
      '@typescript-eslint/no-explicit-any': 'off',
      '@typescript-eslint/no-unsafe-assignment': 'off',
      '@typescript-eslint/no-unsafe-member-access': 'off',
      '@typescript-eslint/no-unsafe-call': 'off',
      '@typescript-eslint/no-unsafe-return': 'off',
      '@typescript-eslint/no-unsafe-argument': 'off',
    },
  },
);
