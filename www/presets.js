// Label lists offered on the page. Plants and marine life are taxa lists (#16): each row is
// kingdom, phylum, class, order, family, genus, epithet, common name, placed as in the GBIF
// Backbone Taxonomy (README.md, "Using the page"). Species that sources place differently
// (dolphins: Cetacea or Artiodactyla; sharks: Chondrichthyes or Elasmobranchii; elder:
// Adoxaceae or Viburnaceae; rosemary: Rosmarinus or Salvia) gave way to other common ones.
// One template each: the list a model first loads with then takes 30 prompts, not the 2,400 of
// OpenAI's 80 templates (an empty templates field). Cells and tissue stay a plain list.
const PLANT = ['Plantae', 'Tracheophyta'];
const MAGNOLIOPSIDA = [...PLANT, 'Magnoliopsida'];
const LILIOPSIDA = [...PLANT, 'Liliopsida'];
const ANIMAL = ['Animalia'];

export const PRESETS = {
  plants: {
    name: 'Common plants',
    template: 'a photo of {}.',
    taxa: [
      [...MAGNOLIOPSIDA, 'Asterales', 'Asteraceae', 'Helianthus', 'annuus', 'common sunflower'],
      [...MAGNOLIOPSIDA, 'Asterales', 'Asteraceae', 'Bellis', 'perennis', 'common daisy'],
      [...MAGNOLIOPSIDA, 'Asterales', 'Asteraceae', 'Taraxacum', 'officinale', 'common dandelion'],
      [...MAGNOLIOPSIDA, 'Fabales', 'Fabaceae', 'Trifolium', 'pratense', 'red clover'],
      [...MAGNOLIOPSIDA, 'Fabales', 'Fabaceae', 'Trifolium', 'repens', 'white clover'],
      [...MAGNOLIOPSIDA, 'Ranunculales', 'Papaveraceae', 'Papaver', 'rhoeas', 'common poppy'],
      [...MAGNOLIOPSIDA, 'Asterales', 'Asteraceae', 'Centaurea', 'cyanus', 'cornflower'],
      [...MAGNOLIOPSIDA, 'Asterales', 'Asteraceae', 'Leucanthemum', 'vulgare', 'oxeye daisy'],
      [...MAGNOLIOPSIDA, 'Rosales', 'Urticaceae', 'Urtica', 'dioica', 'common nettle'],
      [...MAGNOLIOPSIDA, 'Lamiales', 'Plantaginaceae', 'Digitalis', 'purpurea', 'foxglove'],
      [...LILIOPSIDA, 'Asparagales', 'Asparagaceae', 'Hyacinthoides', 'non-scripta', 'bluebell'],
      [...MAGNOLIOPSIDA, 'Ranunculales', 'Ranunculaceae', 'Ranunculus', 'acris', 'meadow buttercup'],
      [...MAGNOLIOPSIDA, 'Asterales', 'Asteraceae', 'Achillea', 'millefolium', 'yarrow'],
      [...MAGNOLIOPSIDA, 'Lamiales', 'Lamiaceae', 'Lavandula', 'angustifolia', 'English lavender'],
      [...MAGNOLIOPSIDA, 'Ericales', 'Primulaceae', 'Primula', 'vulgaris', 'primrose'],
      [...MAGNOLIOPSIDA, 'Lamiales', 'Lamiaceae', 'Thymus', 'vulgaris', 'common thyme'],
      [...MAGNOLIOPSIDA, 'Lamiales', 'Lamiaceae', 'Mentha', 'spicata', 'spearmint'],
      [...MAGNOLIOPSIDA, 'Apiales', 'Araliaceae', 'Hedera', 'helix', 'English ivy'],
      [...PLANT, 'Polypodiopsida', 'Polypodiales', 'Dennstaedtiaceae', 'Pteridium', 'aquilinum', 'bracken'],
      [...LILIOPSIDA, 'Poales', 'Poaceae', 'Phragmites', 'australis', 'common reed'],
      [...MAGNOLIOPSIDA, 'Fagales', 'Fagaceae', 'Quercus', 'robur', 'English oak'],
      [...MAGNOLIOPSIDA, 'Fagales', 'Fagaceae', 'Fagus', 'sylvatica', 'European beech'],
      [...MAGNOLIOPSIDA, 'Fagales', 'Betulaceae', 'Betula', 'pendula', 'silver birch'],
      [...PLANT, 'Pinopsida', 'Pinales', 'Pinaceae', 'Pinus', 'sylvestris', 'Scots pine'],
      [...MAGNOLIOPSIDA, 'Sapindales', 'Sapindaceae', 'Acer', 'platanoides', 'Norway maple'],
      [...MAGNOLIOPSIDA, 'Aquifoliales', 'Aquifoliaceae', 'Ilex', 'aquifolium', 'holly'],
      [...MAGNOLIOPSIDA, 'Rosales', 'Rosaceae', 'Crataegus', 'monogyna', 'common hawthorn'],
      [...MAGNOLIOPSIDA, 'Ericales', 'Ericaceae', 'Calluna', 'vulgaris', 'heather'],
      [...MAGNOLIOPSIDA, 'Rosales', 'Rosaceae', 'Rosa', 'canina', 'dog rose'],
      [...MAGNOLIOPSIDA, 'Rosales', 'Rosaceae', 'Rubus', 'idaeus', 'raspberry'],
    ],
  },
  marine: {
    name: 'Marine life',
    template: 'a photo of {}.',
    taxa: [
      [...ANIMAL, 'Chordata', 'Actinopterygii', 'Perciformes', 'Pomacentridae', 'Amphiprion', 'ocellaris', 'clown anemonefish'],
      [...ANIMAL, 'Chordata', 'Reptilia', 'Testudines', 'Cheloniidae', 'Chelonia', 'mydas', 'green sea turtle'],
      [...ANIMAL, 'Cnidaria', 'Scyphozoa', 'Semaeostomeae', 'Ulmaridae', 'Aurelia', 'aurita', 'moon jellyfish'],
      [...ANIMAL, 'Mollusca', 'Cephalopoda', 'Octopoda', 'Octopodidae', 'Octopus', 'vulgaris', 'common octopus'],
      [...ANIMAL, 'Echinodermata', 'Asteroidea', 'Forcipulatida', 'Asteriidae', 'Asterias', 'rubens', 'common starfish'],
      [...ANIMAL, 'Echinodermata', 'Echinoidea', 'Camarodonta', 'Parechinidae', 'Paracentrotus', 'lividus', 'purple sea urchin'],
      [...ANIMAL, 'Cnidaria', 'Anthozoa', 'Scleractinia', 'Acroporidae', 'Acropora', 'cervicornis', 'staghorn coral'],
      [...ANIMAL, 'Arthropoda', 'Malacostraca', 'Decapoda', 'Nephropidae', 'Homarus', 'gammarus', 'European lobster'],
      [...ANIMAL, 'Chordata', 'Mammalia', 'Carnivora', 'Phocidae', 'Phoca', 'vitulina', 'harbour seal'],
      [...ANIMAL, 'Chordata', 'Actinopterygii', 'Syngnathiformes', 'Syngnathidae', 'Hippocampus', 'hippocampus', 'short-snouted seahorse'],
    ],
  },
  biomedical: {
    name: 'Cells, tissue and imaging',
    template: 'a microscopy image of {}.',
    labels: [
      'red blood cells', 'white blood cells', 'neutrophils', 'lymphocytes', 'platelets', 'epithelial cells',
      'neurons', 'cardiac muscle tissue', 'skeletal muscle tissue', 'adipose tissue', 'bone tissue',
      'cartilage', 'liver tissue', 'kidney tissue', 'lung tissue', 'tumor tissue', 'bacteria',
      'yeast cells', 'dividing cells in mitosis', 'an immunohistochemistry stained section',
    ],
  },
};
