import pkg from '../../package.json';
import { VERSION } from '../version';

describe('VERSION', () => {
  it('is the package version', () => {
    expect(VERSION).toBe(pkg.version);
  });
});
