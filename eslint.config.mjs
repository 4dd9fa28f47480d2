// Type-checked lint over src/, test/ and scripts/ (generated code excluded: it is never edited by hand).
import tseslint from 'typescript-eslint';

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
    // Only src/ffmpeg/native.ts loads beamcoder: everything else reaches FFmpeg through its typed surface.
    files: ['**/*.ts'],
    ignores: ['src/ffmpeg/native.ts'],
    rules: {
      'no-restricted-imports': ['error', { patterns: [{ group: ['beamcoder', 'beamcoder/*'], message: 'Only src/ffmpeg/native.ts loads beamcoder.' }] }],
      'no-restricted-syntax': ['error', {
        selector: "CallExpression[callee.name='require'] > Literal[value=/^beamcoder/], CallExpression[callee.property.name='resolve'] > Literal[value=/^beamcoder/]",
        message: 'Only src/ffmpeg/native.ts loads beamcoder.',
      }],
    },
  },
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
