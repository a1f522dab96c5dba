import { findPolyaxonMagic, linesOf, yamlMagic } from '../magic';

const lines = (s: string) => [...linesOf(s)];

describe('yamlMagic', () => {
  it.each([
    ['%%polyaxon_dag experiment\nkind: dag', 'polyaxon_dag'],
    ['%%polyaxon_component train\ninputs: []', 'polyaxon_component'],
    ['%%polyaxon_hook', 'polyaxon_hook'],
    ['\n  \n%%polyaxon_dag x\nops: []', 'polyaxon_dag']
  ])('%j is YAML (%s)', (source, name) => {
    expect(yamlMagic(linesOf(source))?.name).toBe(name);
  });

  it.each([
    '%%polyaxon_python step\nprint(1)',
    'x = 1\n%%polyaxon_dag',
    '%polyaxon status',
    '%%polyaxon\nkind: dag',
    '%%polyaxon_dag-x',
    '# %%polyaxon_dag',
    ' %%polyaxon_dag',
    '%%bash\necho',
    ''
  ])('%j stays Python', source => {
    expect(yamlMagic(linesOf(source))).toBeNull();
  });

  it('finds %%polyaxon_python too, as a magic that is not YAML', () => {
    expect(findPolyaxonMagic(linesOf('%%polyaxon_python s\nx=1'))).toEqual({
      name: 'polyaxon_python',
      index: 0
    });
  });

  it('gives the index of the magic line after blank lines', () => {
    expect(findPolyaxonMagic(linesOf('\n\n%%polyaxon_dag\n'))?.index).toBe(2);
  });

  it('stops scanning a cell of blank lines', () => {
    expect(
      findPolyaxonMagic(linesOf('\n'.repeat(100) + '%%polyaxon_dag'))
    ).toBeNull();
  });
});

describe('linesOf', () => {
  it('splits like String.split but lazily', () => {
    for (const s of ['', 'a', 'a\n', '\n', 'a\nb\n\nc']) {
      expect(lines(s)).toEqual(s.split('\n'));
    }
  });
});
