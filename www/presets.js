// Label lists offered on the page, each with a prompt template that fits it.
export const PRESETS = {
  plants: {
    name: 'Common plants (30)',
    template: 'a photo of a {}, a type of plant.',
    labels: [
      'sunflower', 'common daisy', 'dandelion', 'red clover', 'white clover', 'common poppy', 'cornflower',
      'oxeye daisy', 'common nettle', 'foxglove', 'bluebell', 'buttercup', 'yarrow', 'lavender', 'rosemary',
      'thyme', 'mint', 'English ivy', 'bracken fern', 'common reed', 'oak', 'beech', 'silver birch',
      'Scots pine', 'maple', 'holly', 'hawthorn', 'elder', 'dog rose', 'blackberry bramble',
    ],
  },
  marine: {
    name: 'Marine life (10)',
    template: 'a photo of a {}, a type of marine animal.',
    labels: ['clownfish', 'sea turtle', 'jellyfish', 'octopus', 'starfish', 'sea urchin', 'coral', 'shark', 'dolphin', 'seahorse'],
  },
  biomedical: {
    name: 'Cells, tissue and imaging (20)',
    template: 'a microscopy image of {}.',
    labels: [
      'red blood cells', 'white blood cells', 'neutrophils', 'lymphocytes', 'platelets', 'epithelial cells',
      'neurons', 'cardiac muscle tissue', 'skeletal muscle tissue', 'adipose tissue', 'bone tissue',
      'cartilage', 'liver tissue', 'kidney tissue', 'lung tissue', 'tumor tissue', 'bacteria',
      'yeast cells', 'dividing cells in mitosis', 'an immunohistochemistry stained section',
    ],
  },
};
