"""slatestream's command line and offline jobs: `slatestream demo | run | worker | evaluate |
sweep | replay | forget | encoders | schemas`, their reports, and the embedded RocksDB store.

The only package that imports click, tqdm or matplotlib. The learning core is `online/`, the
Kafka edge `streams/`, item encoders `encoders/`; the commands here wire them together.
"""
