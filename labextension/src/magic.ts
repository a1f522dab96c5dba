/**
 * Which cells hold YAML: `%%polyaxon_<name>` cell magics, except those whose body is Python.
 */

const MAGIC_RE = /^%%(polyaxon_\w+)(?=\s|$)/;

/** Magics whose body is Python, not YAML. */
export const PYTHON_MAGICS: ReadonlySet<string> = new Set(['polyaxon_python']);

export interface IMagicLine {
  /** e.g. `polyaxon_dag` */
  name: string;
  /** 0-based index of the magic line (IPython drops leading blank lines first). */
  index: number;
}

/**
 * Find the cell magic of a cell from its first lines, as IPython sees it: blank lines before
 * the `%%` line are skipped; anything else first means there is no cell magic.
 */
export function findPolyaxonMagic(
  lines: Iterable<string>,
  maxScan = 50
): IMagicLine | null {
  let index = 0;
  for (const line of lines) {
    if (index >= maxScan) {
      return null;
    }
    if (line.trim() === '') {
      index++;
      continue;
    }
    const m = MAGIC_RE.exec(line);
    return m ? { name: m[1], index } : null;
  }
  return null;
}

/** The YAML magic of a cell, or null when the cell should stay Python. */
export function yamlMagic(lines: Iterable<string>): IMagicLine | null {
  const magic = findPolyaxonMagic(lines);
  return magic && !PYTHON_MAGICS.has(magic.name) ? magic : null;
}

/** Lines of a source string, lazily (a cell may be long; only its head matters). */
export function* linesOf(source: string): Generator<string> {
  let start = 0;
  while (start <= source.length) {
    const end = source.indexOf('\n', start);
    if (end < 0) {
      yield source.slice(start);
      return;
    }
    yield source.slice(start, end);
    start = end + 1;
  }
}
