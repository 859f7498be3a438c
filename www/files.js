// Files the user hands the page are checked for size before they are read: a 1 GB file named
// .jpg is refused at once instead of filling the tab's memory. The same limits as the CLI's.

const MB = 1024 * 1024;
const LIMITS = {
  photo: { bytes: 100 * MB, what: 'a photo' },
  labels: { bytes: 16 * MB, what: 'a label list' },
  adapter: { bytes: 1024 * MB, what: 'an adapter' },
  // pybioclip's txt_emb_species.json names ~450,000 taxa in well under this.
  names: { bytes: 512 * MB, what: 'a names file' },
};

function check(file, kind) {
  const { bytes, what } = LIMITS[kind];
  if (file.size > bytes) {
    const e = new Error(`${file.name} is larger than ${bytes / MB} MB, more than ${what} may be; it was not read.`);
    e.kind = 'input';
    throw e;
  }
}

/** The file's bytes, if it is no larger than `kind` ('photo') allows. */
export async function readBytes(file, kind = 'photo') {
  check(file, kind);
  return file.arrayBuffer();
}

/**
 * The file's text, if it is no larger than `kind` ('labels', 'adapter') allows and is UTF-8
 * (as the CLI asks): Latin-1 or UTF-16 would otherwise turn into labels of replacement signs.
 */
export async function readText(file, kind) {
  check(file, kind);
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(await file.arrayBuffer());
  } catch (e) {
    if (!(e instanceof TypeError)) throw e;
    const error = new Error(`${file.name} is not UTF-8 text; save it as UTF-8 and import it again.`);
    error.kind = 'input';
    throw error;
  }
}
