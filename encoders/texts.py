"""A fixed, varied text set for variant agreement (int8/fp16 vs fp32) and parity tests."""

from __future__ import annotations

AGREEMENT_TEXTS: tuple[str, ...] = (
    "Wireless noise-cancelling headphones with 30-hour battery life",
    "Organic green tea, 100 bags",
    "A slow-burning thriller about a lighthouse keeper who finds a message in a bottle.",
    "Stainless steel chef's knife, 8 inch",
    "Running shoes for trail and road, lightweight, breathable mesh upper, size 42",
    "How to bake sourdough bread at home without a stand mixer",
    "Live jazz tonight at the riverside bar: free entry before 9pm",
    "Kids' building blocks set (250 pieces) — compatible with major brands",
    "Quarterly earnings beat expectations as cloud revenue grows 28%",
    "4K monitor",
    "The mountain trail closes after heavy snowfall; rangers advise waiting until spring.",
    "Vintage leather messenger bag, hand-stitched, brown",
    "Beginner's guide to linear algebra: vectors, matrices and eigenvalues explained",
    "Cozy knitted wool sweater in forest green",
    "Café au lait et croissants: a Parisian breakfast guide",
    "Smartphone with triple camera, 128 GB storage, 6.1-inch OLED display",
    "Electric kettle 1.7 L with temperature control",
    "Podcast episode 142: the history of the printing press and the spread of ideas",
    "Yoga mat, non-slip, 6 mm",
    "Local elections: turnout reached a record high in the northern districts",
    "Gaming laptop RTX graphics 16 GB RAM 1 TB SSD 165 Hz display backlit keyboard",
    "Handmade ceramic mug",
    "A documentary on coral reefs and the scientists racing to save them",
    "Weekly meal plan: vegetarian dinners under 30 minutes",
    "Bluetooth speaker, waterproof IPX7, deep bass, 12 h playtime",
    "Fantasy novel: dragons, exiled princes and a map that redraws itself every night",
    "Desk lamp with wireless charging pad",
    "Stock markets fell sharply on Tuesday amid fears of rising interest rates",
    "Children's picture book about a curious fox",
    "Ergonomic office chair with lumbar support and adjustable armrests",
    "Top 10 hiking trails in the Alps for families with young children",
    "Espresso machine",
    "sale",
    "An exhaustive, rambling product description that goes on and on about the many features of "
    "this versatile multi-purpose kitchen appliance, which can blend, chop, knead, steam, slow cook, "
    "sous-vide, ferment yoghurt, proof dough, and even connect to your phone so that you can start "
    "dinner from the office, with twelve presets, a glass jug, a stainless steel bowl, dishwasher-safe "
    "parts, a two-year warranty and a recipe book with more than two hundred recipes from chefs around "
    "the world, including soups, sauces, desserts, breads and baby food.",
    "Mystery box 📦 surprise gift!",
    "Noise-cancelling earbuds",
    "Team wins championship after dramatic penalty shootout",
    "Winter tyres 205/55 R16",
    "Recipe: lemon drizzle cake",
    "Ultralight tent for two people, 1.2 kg, three seasons",
)
