// bench.html's worker: holds a GalleryIndex like www/worker.js does and answers searches.
import init, { GalleryIndex } from '../pkg/fieldclip.js';

const ready = init();
let gallery = null;
self.onmessage = async ({ data }) => {
  await ready;
  if (data.matrix) {
    gallery = new GalleryIndex(data.dim);
    gallery.add(data.matrix);
    self.postMessage({ size: gallery.size });
  } else {
    self.postMessage({ hits: gallery.search(data.query, data.k) });
  }
};
