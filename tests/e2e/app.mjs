// Steps on the fieldclip page that several end-to-end tests take.

/** Replaces the active list's labels and template and waits until they are encoded. */
export async function useLabels(page, labels, template = '{}') {
  // Labels still being encoded (the list the model was loaded with) first: otherwise their
  // "N labels ready" could be taken for ours.
  await page.waitFor(`return !/^Encoding/.test(document.getElementById('labels-status').textContent);`, 'the current labels');
  await page.run(`
    const [labels, template] = arguments;
    // The plants and marine presets are taxa lists, whose editor takes a table: a new plain list.
    if (document.getElementById('labels-section').dataset.kind === 'taxa') document.getElementById('list-new').click();
    document.getElementById('labels').value = labels.join('\\n');
    document.getElementById('templates').value = template;
    document.getElementById('templates').dispatchEvent(new Event('input'));
    document.getElementById('labels-status').textContent = '';`, labels, template);
  await page.waitFor(`return new RegExp('^${labels.length} labels ready').test(document.getElementById('labels-status').textContent);`, 'labels');
}

/** Clicks a button that downloads a file; returns the file's name and text. */
export async function captureDownload(page, buttonId) {
  return page.run(`
    const original = HTMLAnchorElement.prototype.click;
    const link = new Promise((resolve) => { HTMLAnchorElement.prototype.click = function () { resolve(this); }; });
    document.getElementById(arguments[0]).click();
    const a = await link;
    HTMLAnchorElement.prototype.click = original;
    return { name: a.download, text: await (await fetch(a.href)).text() };`, buttonId);
}
